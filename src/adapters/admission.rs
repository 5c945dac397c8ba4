//! Who and how much a publish path lets through: only the adapter's agency's record
//! systems (when TLS names callers), and only as many records as the agency's publish
//! rate has left.

use tokio::time::Instant;
use tonic::{Request, Status};

use super::error::{AdapterError, answer};
use super::{PublishPath, Publishers};
use crate::grpc::deadline;
use crate::proto::Agency;
use crate::records::agency_slug;
use crate::tls::Peer;

impl PublishPath {
    /// [`Self::admit`], counting a refusal as a publish of nothing.
    pub(super) async fn admitted<T>(
        &self,
        agency: Agency,
        request: &Request<T>,
        started: Instant,
    ) -> Result<(), Status> {
        match self.admit(agency, request).await {
            Ok(()) => Ok(()),
            refused => answer(&self.telemetry, agency, 0, started, refused),
        }
    }

    /// Lets the call through if its caller is one of `agency`'s record systems (an
    /// integration of the policy); otherwise audits the attempt and refuses it.
    async fn admit<T>(&self, agency: Agency, request: &Request<T>) -> Result<(), AdapterError> {
        let Publishers::Integrations { policy, audit } = &self.publishers else {
            return Ok(());
        };
        let peer = request
            .extensions()
            .get::<Peer>()
            .ok_or(AdapterError::Unauthenticated)?;
        let slug = agency_slug(agency);
        let reason = if peer.requester.agency != agency {
            format!(
                "only {slug}'s systems may publish through the {slug} adapter; the client certificate is {}'s",
                peer.requester
            )
        } else {
            match policy.integration(&peer.requester) {
                Ok(()) => return Ok(()),
                Err(not) => not.to_string(),
            }
        };
        // As the trail names other methods: `PublicSecurityAdapter.PublishBatch`.
        let crate::grpc::CallMethod(path) = request.into();
        let method = path.trim_start_matches("govlink.v1.").replace('/', ".");
        let attempt = crate::audit::Access {
            requester: &peer.requester,
            on_behalf_of: None,
            method: &method,
            purpose: "publish",
            case_id: "",
            persons: Vec::new(),
            units: Vec::new(),
        }
        .denied(reason.as_str());
        // Refused either way; an attempt the trail could not take is at least logged.
        if let Err(e) = audit
            .record(attempt, deadline(request, self.max_wait))
            .await
        {
            tracing::error!(error = %e, requester = %peer.requester, adapter = slug, "refused publish not audited");
        }
        Err(AdapterError::NotPublisher(reason))
    }

    /// Takes `records` from `agency`'s publish rate before any validation work: refused
    /// (`RESOURCE_EXHAUSTED`) while they are not there, and then nothing of the call is
    /// published.
    pub(super) fn admit_rate(&self, agency: Agency, records: usize) -> Result<(), AdapterError> {
        self.rate
            .check(&agency, records as u64)
            .map_err(|wait| AdapterError::RateExhausted {
                agency,
                records,
                rate: self.rate.rate(),
                wait,
            })
    }
}
