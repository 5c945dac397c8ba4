//! Why a lookup was not answered, and the one place such a failure becomes the caller's
//! answer: [`QueryError::into_status`] both maps it to a `tonic::Status` and counts it (a
//! field over its length as a limit, a Redis failure of the record store or the access
//! index as the resolver's), so no lookup can answer a failure without counting it.

use tonic::Status;

use crate::audit::AuditError;
use crate::grpc::invalid_argument;
use crate::proto::{Agency, Position};
use crate::records::Violations;
use crate::resolver::access::IndexError;
use crate::resolver::checks::{CheckError, PartyRole};
use crate::resolver::store::StoreError;
use crate::telemetry::events::{Limit, Limited, RedisFailed};
use crate::telemetry::metrics::Telemetry;

/// Why a lookup was not answered.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The request is malformed: every broken rule, by field.
    #[error("invalid request: {0}")]
    Invalid(Violations),
    /// The policy does not allow it (the reason names the missing grant or section).
    #[error("permission denied: {0}")]
    Denied(String),
    /// What was asked for does not exist.
    #[error("not found: {0}")]
    NotFound(&'static str),
    /// A position the caller waits for was not materialized before the deadline.
    #[error("{}/{} not materialized up to offset {} before the deadline", .0.topic, .0.partition, .0.offset)]
    NotMaterialized(Position),
    /// The store cannot answer (unreachable, or rebuilding).
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The audit entry could not be written, so the answer is withheld.
    #[error("audit: {0}")]
    Audit(#[from] AuditError),
    /// The access index cannot answer.
    #[error("access index: {0}")]
    Index(#[from] IndexError),
    /// More access watches are open than may be (the reason says which bound).
    #[error("too many watches: {0}")]
    TooManyWatches(String),
    /// Stored data does not decode: a defect, not the caller's fault.
    #[error("corrupt store: {0}")]
    Corrupt(String),
    /// The open objections cannot be read: no answer is given rather than one that may
    /// miss a disputed record.
    #[error("objections: {0}")]
    Disputes(String),
}

impl QueryError {
    /// The answer to a lookup a requester of `agency` made that failed with this error,
    /// counted in `telemetry`: a field over its length as a [`Limit::FieldLength`]
    /// refusal of `agency`, a watch over the bounds as a [`Limit::AccessWatches`] one, a failure of the Redis behind the record store or the access
    /// index as the resolver's. A store that is not ready is not a Redis failure (Redis
    /// answered: the store is being rebuilt), nor is an audit entry the broker did not
    /// take.
    pub fn into_status(self, agency: Agency, telemetry: &Telemetry) -> Status {
        if matches!(&self, QueryError::Invalid(v) if v.too_long()) {
            telemetry.emit(Limited {
                limit: Limit::FieldLength,
                agency,
            });
        }
        if matches!(&self, QueryError::TooManyWatches(_)) {
            telemetry.emit(Limited {
                limit: Limit::AccessWatches,
                agency,
            });
        }
        if let Some(error) = self.redis_failure() {
            telemetry.emit(RedisFailed {
                component: "resolver",
                error,
            });
        }
        self.status()
    }

    /// The Redis failure behind this error, if Redis failed.
    fn redis_failure(&self) -> Option<&dyn std::fmt::Display> {
        match self {
            QueryError::Store(StoreError::NotReady(_)) => None,
            QueryError::Store(e) => Some(e),
            QueryError::Index(e) => Some(e),
            _ => None,
        }
    }

    /// The status the caller receives; `Internal` and unavailable details are logged,
    /// not returned.
    fn status(self) -> Status {
        match self {
            QueryError::Invalid(v) => invalid_argument(&v),
            QueryError::Denied(reason) => Status::permission_denied(reason),
            QueryError::NotFound(what) => Status::not_found(what),
            e @ QueryError::NotMaterialized(_) => Status::deadline_exceeded(e.to_string()),
            QueryError::Store(StoreError::NotReady(why)) => {
                Status::unavailable(format!("{why}; retry later"))
            }
            QueryError::Store(e) => {
                tracing::warn!(error = %e, "store unavailable");
                Status::unavailable("the record store is unavailable; retry later")
            }
            QueryError::Audit(e) => {
                tracing::warn!(error = %e, "audit write failed; answer withheld");
                Status::unavailable(
                    "the audit trail cannot be written, so no answer is given; retry later",
                )
            }
            QueryError::Index(e) => {
                tracing::warn!(error = %e, "access index unavailable");
                Status::unavailable("the access index is unavailable; retry later")
            }
            QueryError::TooManyWatches(why) => Status::resource_exhausted(why),
            QueryError::Corrupt(what) => {
                tracing::error!(%what, "stored data does not decode");
                Status::internal("internal error")
            }
            QueryError::Disputes(e) => {
                tracing::warn!(error = %e, "open objections unavailable");
                Status::unavailable(
                    "the open objections cannot be read, so no answer is given; retry later",
                )
            }
        }
    }
}

impl From<Violations> for QueryError {
    fn from(v: Violations) -> QueryError {
        QueryError::Invalid(v)
    }
}

/// A check refused for its parameters: the field it is about.
impl From<CheckError> for QueryError {
    fn from(e: CheckError) -> QueryError {
        let field = match &e {
            CheckError::NoSellers | CheckError::SellerIsBuyer { .. } => "seller_ids",
            CheckError::DuplicateParty {
                role: PartyRole::Seller,
                ..
            } => "seller_ids",
            CheckError::NoBuyers | CheckError::DuplicateParty { .. } => "buyer_ids",
            CheckError::SameRegion => "to_region",
            // The configured rules are checked at start-up; this is a defect.
            CheckError::InvalidRule { .. } | CheckError::InvalidLoanRule { .. } => {
                return QueryError::Corrupt(e.to_string());
            }
        };
        let mut v = Violations::default();
        v.add(field, e.to_string());
        QueryError::Invalid(v)
    }
}

#[cfg(test)]
#[path = "error_tests.rs"]
mod tests;
