//! Who is asking. One interceptor turns each call into a [`Caller`] (the requester, and
//! the citizen a self-service requester acts for) or refuses it with `UNAUTHENTICATED`.
//!
//! The requester is the one the verified client certificate names (mutual TLS, see
//! `crate::tls`). Only `dev` and `demo` without TLS take it from a metadata header instead
//! (`--insecure-requester-header`, which they turn on). Without a source, every lookup
//! is refused: identity is never guessed. The citizen a requester acts for is always a
//! header: the requester, once identified, vouches for it.

use tonic::metadata::MetadataMap;
use tonic::{Request, Status};

use crate::domain::ResidentId;
use crate::identity::{Caller, ON_BEHALF_OF_HEADER, REQUESTER_HEADER, Requester};
use crate::tls::Peer;

/// Where requester identities come from; none unless one is configured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RequesterSource {
    /// No source is configured: every lookup is `UNAUTHENTICATED`.
    #[default]
    None,
    /// The client certificate the server verified (the [`Peer`] in the request).
    Certificate,
    /// The `x-govlink-requester` header, trusted as it is. Only for `dev`, `demo` and
    /// tests: anyone who can reach the port can claim any requester.
    InsecureHeader,
}

impl RequesterSource {
    /// The interceptor's work: identifies the caller of `request` and records it in the
    /// request's extensions, or refuses the call.
    pub fn identify(self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let caller = match self {
            RequesterSource::None => {
                return Err(Status::unauthenticated(
                    "no requester identity: this resolver has no identity source configured \
                     (mutual TLS is not set up, and the insecure requester header is off)",
                ));
            }
            RequesterSource::Certificate => {
                let peer = request.extensions().get::<Peer>().ok_or_else(|| {
                    Status::unauthenticated("no verified client certificate on this call")
                })?;
                Caller {
                    requester: peer.requester.clone(),
                    on_behalf_of: on_behalf_of(request.metadata())?,
                }
            }
            RequesterSource::InsecureHeader => from_headers(request.metadata())?,
        };
        request.extensions_mut().insert(caller);
        Ok(request)
    }
}

/// The text of header `name`, if present.
fn text<'m>(metadata: &'m MetadataMap, name: &str) -> Result<Option<&'m str>, Status> {
    match metadata.get(name) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .map(Some)
            .map_err(|_| Status::unauthenticated(format!("{name}: not printable ASCII"))),
    }
}

/// The citizen the requester says it acts for.
fn on_behalf_of(metadata: &MetadataMap) -> Result<Option<ResidentId>, Status> {
    text(metadata, ON_BEHALF_OF_HEADER)?
        .map(|id| {
            ResidentId::parse(id).map_err(|e| {
                Status::unauthenticated(format!(
                    "{ON_BEHALF_OF_HEADER}: not a resident ID number: {e}"
                ))
            })
        })
        .transpose()
}

/// The caller named by the insecure headers.
fn from_headers(metadata: &MetadataMap) -> Result<Caller, Status> {
    let requester = text(metadata, REQUESTER_HEADER)?.ok_or_else(|| {
        Status::unauthenticated(format!(
            "no requester identity: set the {REQUESTER_HEADER} metadata to <agency>/<service>, \
             e.g. housing/transfer-window"
        ))
    })?;
    let requester = Requester::parse(requester)
        .map_err(|e| Status::unauthenticated(format!("{REQUESTER_HEADER}: {e}")))?;
    Ok(Caller {
        requester,
        on_behalf_of: on_behalf_of(metadata)?,
    })
}

/// The caller the interceptor identified.
pub fn caller_of<T>(request: &Request<T>) -> Result<Caller, Status> {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("no requester identity"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Agency;

    fn call(headers: &[(&'static str, &str)]) -> Result<Caller, Status> {
        let mut request = Request::new(());
        for (name, value) in headers {
            request.metadata_mut().insert(*name, value.parse().unwrap());
        }
        let request = RequesterSource::InsecureHeader.identify(request)?;
        caller_of(&request)
    }

    #[test]
    fn the_header_names_agency_and_service() {
        let caller = call(&[(REQUESTER_HEADER, "housing/transfer-window")]).unwrap();
        assert_eq!(
            caller.requester,
            Requester::new(Agency::Housing, "transfer-window")
        );
        assert_eq!(caller.on_behalf_of, None);
        let caller = call(&[
            (REQUESTER_HEADER, "public-security/citizen-portal"),
            (ON_BEHALF_OF_HEADER, "11010519491231002X"),
        ])
        .unwrap();
        assert_eq!(
            caller.on_behalf_of.map(|id| id.as_str().to_owned()),
            Some("11010519491231002X".to_owned())
        );
    }

    #[test]
    fn a_missing_or_malformed_identity_is_unauthenticated() {
        for headers in [
            vec![],
            vec![(REQUESTER_HEADER, "housing")],
            vec![(REQUESTER_HEADER, "police/window")],
            vec![(REQUESTER_HEADER, "housing/Transfer Window")],
            vec![
                (REQUESTER_HEADER, "housing/transfer-window"),
                (ON_BEHALF_OF_HEADER, "123"),
            ],
        ] {
            let err = call(&headers).unwrap_err();
            assert_eq!(err.code(), tonic::Code::Unauthenticated, "{headers:?}");
        }
        let err = RequesterSource::None
            .identify(Request::new(()))
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
        assert!(
            err.message().contains("no identity source"),
            "{}",
            err.message()
        );
    }
}
