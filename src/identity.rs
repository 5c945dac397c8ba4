//! Who is calling: a requester (an agency and one of its services, as its client
//! certificate names it), the citizen a self-service requester acts for, and the
//! metadata that carries them where no certificate does (`dev`, `demo`, tests). The
//! names are the policy file's, the certificates' and the audit trail's.

use std::fmt;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::{Request, Status};

use crate::domain::ResidentId;
use crate::proto::Agency;
use crate::records::{agency_from_slug, agency_slug, agency_slugs};

/// Who is asking: an agency and one of its services (e.g. housing / transfer-window).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Requester {
    /// The agency the requester belongs to (from the client certificate, later).
    pub agency: Agency,
    /// The agency's service making the call, e.g. `transfer-window`.
    pub service: String,
}

impl Requester {
    /// A requester of `agency` calling through `service`.
    pub fn new(agency: Agency, service: impl Into<String>) -> Self {
        Self {
            agency,
            service: service.into(),
        }
    }
}

/// Why `agency/service` does not name a requester.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequesterError {
    /// Not of the form `agency/service`.
    #[error("must be <agency>/<service>, e.g. housing/transfer-window")]
    Shape,
    /// The agency is not one of the four.
    #[error("unknown agency {0:?} (expected one of: {agencies})", agencies = agency_slugs())]
    UnknownAgency(String),
    /// The service is not a lowercase slug.
    #[error("service {0}")]
    Service(SlugError),
}

impl Requester {
    /// Parses `agency/service`, e.g. `housing/transfer-window`.
    pub fn parse(text: &str) -> Result<Self, RequesterError> {
        let (agency, service) = text.split_once('/').ok_or(RequesterError::Shape)?;
        let agency = agency_from_slug(agency)
            .ok_or_else(|| RequesterError::UnknownAgency(agency.chars().take(32).collect()))?;
        check_slug(service).map_err(RequesterError::Service)?;
        Ok(Self::new(agency, service))
    }
}

impl fmt::Display for Requester {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", agency_slug(self.agency), self.service)
    }
}

/// The longest purpose or service name accepted; longer ones are typos or abuse.
const MAX_SLUG_LEN: usize = 64;

/// Why a purpose or service name is not a lowercase slug.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{found:?} is not a lowercase slug: {rule}")]
pub struct SlugError {
    /// The rejected text, cut to the first 64 characters (it comes from the wire).
    pub found: String,
    /// The rule it breaks, in words.
    pub rule: &'static str,
}

/// Checks the slug shape shared by purposes and services: `[a-z][a-z0-9]*(-[a-z0-9]+)*`,
/// at most 64 characters.
pub(crate) fn check_slug(s: &str) -> Result<(), SlugError> {
    let fail = |rule| {
        Err(SlugError {
            found: s.chars().take(MAX_SLUG_LEN).collect(),
            rule,
        })
    };
    if s.is_empty() {
        return fail("must not be empty");
    }
    if s.len() > MAX_SLUG_LEN {
        return fail("must be at most 64 characters");
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return fail("only a-z, 0-9 and '-' are allowed");
    }
    if !s.as_bytes()[0].is_ascii_lowercase() {
        return fail("must start with a letter");
    }
    if s.ends_with('-') || s.contains("--") {
        return fail("'-' must separate words (no trailing or doubled '-')");
    }
    Ok(())
}

/// Metadata naming the requester: `<agency>/<service>`, e.g. `housing/transfer-window`.
pub const REQUESTER_HEADER: &str = "x-govlink-requester";
/// Metadata naming the citizen a self-service requester (the citizen portal) acts for.
pub const ON_BEHALF_OF_HEADER: &str = "x-govlink-on-behalf-of";

/// The caller of one request, put into its extensions by `grpc::RequesterSource::identify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The agency and service asking.
    pub requester: Requester,
    /// The citizen the requester acts for, when it said so (self-only grants need it).
    pub on_behalf_of: Option<ResidentId>,
}

/// The client side of the insecure header: a `tonic` interceptor that calls as one
/// requester (and citizen), for `dev`, `demo` and tests.
#[derive(Debug, Clone)]
pub struct AsRequester {
    requester: MetadataValue<Ascii>,
    on_behalf_of: Option<MetadataValue<Ascii>>,
}

impl AsRequester {
    /// Calls as `requester` (`agency/service`), for the citizen `on_behalf_of` if given.
    pub fn new(requester: &Requester, on_behalf_of: Option<&ResidentId>) -> AsRequester {
        let value = |text: &str| {
            MetadataValue::try_from(text).expect("requesters and resident IDs are ASCII")
        };
        AsRequester {
            requester: value(&requester.to_string()),
            on_behalf_of: on_behalf_of.map(|id| value(id.as_str())),
        }
    }
}

impl Interceptor for AsRequester {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let metadata = request.metadata_mut();
        metadata.insert(REQUESTER_HEADER, self.requester.clone());
        if let Some(citizen) = &self.on_behalf_of {
            metadata.insert(ON_BEHALF_OF_HEADER, citizen.clone());
        }
        Ok(request)
    }
}
