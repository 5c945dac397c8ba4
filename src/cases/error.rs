//! Why a call of the `Cases` or `Tasks` service was not answered, and the one place such
//! a failure becomes a gRPC status (a small set of codes) and is counted where it is
//! worth counting: a field over its length, and the case store's Redis failing.

use std::borrow::Cow;

use tonic::Status;

use super::admission::MAX_STREAMS_PER_REQUESTER;
use super::store::CaseStoreError;
use crate::audit::AuditError;
use crate::grpc::refuse_fields;
use crate::identity::Requester;
use crate::kafka::PublishError;
use crate::proto::Agency;
use crate::records::Violations;
use crate::telemetry::events::RedisFailed;
use crate::telemetry::metrics::Telemetry;

/// Why a case or task call failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CaseError {
    /// The request broke these rules, by field (`INVALID_ARGUMENT`); a field over its
    /// length is counted as the `agency`'s.
    #[error("invalid request: {violations}")]
    Invalid {
        /// The rules broken.
        violations: Violations,
        /// The requester's agency.
        agency: Agency,
    },
    /// The policy does not let the requester do it, and why (`PERMISSION_DENIED`).
    #[error("{0}")]
    Denied(String),
    /// No such case or task (`NOT_FOUND`).
    #[error("{0}")]
    NotFound(&'static str),
    /// The case or step is not in a state the call can act on (`FAILED_PRECONDITION`).
    #[error("{0}")]
    Precondition(Cow<'static, str>),
    /// The requester has as many streams open as it may (`RESOURCE_EXHAUSTED`).
    #[error("requester {0} has too many streams open")]
    TooManyStreams(Requester),
    /// The case store failed (`UNAVAILABLE`; a Redis failure is counted).
    #[error("case store: {0}")]
    Store(CaseStoreError),
    /// The case store failed under a `WatchCase` stream, which ends (`UNAVAILABLE`, as
    /// [`CaseError::Store`], in the stream's own words).
    #[error("case store under a watch: {0}")]
    WatchedStore(CaseStoreError),
    /// The broker did not take the command (`UNAVAILABLE`).
    #[error("command not taken: {0}")]
    NotTaken(PublishError),
    /// The audit trail did not take the entry of `method`, so nothing was done
    /// (`UNAVAILABLE`).
    #[error("{method} not audited: {error}")]
    NotAudited {
        /// The gRPC method whose entry it was.
        method: &'static str,
        /// Why the trail did not take it.
        error: AuditError,
    },
    /// The engine has not applied the command by the call's deadline
    /// (`DEADLINE_EXCEEDED`).
    #[error("command not applied by the deadline")]
    NotApplied,
    /// Answered by a layer the services share with the rest of govlink (the caller's
    /// identity and rate, how far the records are materialized), as that layer answers
    /// it and counts it where it does.
    #[error("{0}")]
    Answered(Status),
}

impl From<Status> for CaseError {
    fn from(status: Status) -> CaseError {
        CaseError::Answered(status)
    }
}

/// `Ok` when `violations` is empty, else what refuses the request of `agency` for them.
pub(crate) fn fields_valid(violations: Violations, agency: Agency) -> Result<(), CaseError> {
    if violations.is_empty() {
        Ok(())
    } else {
        Err(CaseError::Invalid { violations, agency })
    }
}

impl CaseError {
    /// The status that answers the call, counting in `telemetry` what is counted.
    pub(crate) fn status(self, telemetry: &Telemetry) -> Status {
        match self {
            CaseError::Invalid { violations, agency } => {
                refuse_fields(&violations, telemetry, agency)
            }
            CaseError::Denied(reason) => Status::permission_denied(reason),
            CaseError::NotFound(what) => Status::not_found(what),
            CaseError::Precondition(why) => Status::failed_precondition(why),
            CaseError::TooManyStreams(requester) => Status::resource_exhausted(format!(
                "requester {requester} has {MAX_STREAMS_PER_REQUESTER} streams open on this \
                 server, the most it may: close one first"
            )),
            CaseError::Store(e) => {
                store_failed(&e, telemetry);
                Status::unavailable("the case store is unavailable; retry later")
            }
            CaseError::WatchedStore(e) => {
                store_failed(&e, telemetry);
                Status::unavailable("the case store is unavailable")
            }
            CaseError::NotTaken(e) => {
                Status::unavailable(format!("the command was not taken: {e}; retrying is safe"))
            }
            CaseError::NotAudited { method, error } => {
                tracing::warn!(%error, method, "case action not audited");
                Status::unavailable(
                    "the action could not be recorded in the audit trail, so it was not \
                     taken; retry",
                )
            }
            CaseError::NotApplied => Status::deadline_exceeded(
                "the case engine has not applied the command yet; it will: read the case later",
            ),
            CaseError::Answered(status) => status,
        }
    }
}

/// Logs the case store's failure, and counts it when Redis failed.
fn store_failed(e: &CaseStoreError, telemetry: &Telemetry) {
    match e {
        CaseStoreError::Redis(_) => telemetry.emit(RedisFailed {
            component: "cases",
            error: e,
        }),
        CaseStoreError::Corrupt { .. } => {
            tracing::warn!(error = %e, "case store unavailable");
        }
    }
}
