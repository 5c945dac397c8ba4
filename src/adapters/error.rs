//! Why an adapter refuses or fails a publish: one [`AdapterError`], mapped to a gRPC
//! status in one place (`From<AdapterError> for Status`), and every call's refusals and
//! outcome counted in one place ([`answer`]).

use std::time::Duration;

use tokio::time::Instant;
use tonic::Status;

use crate::grpc::invalid_argument;
use crate::kafka::PublishError;
use crate::limits::{Rate, exhausted};
use crate::proto::Agency;
use crate::records::{Violations, agency_slug};
use crate::telemetry::events::{Limit, Limited, Published, outcome_of};
use crate::telemetry::metrics::Telemetry;

/// Why a publish call was refused or not acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    /// The call carries no verified client certificate.
    #[error("no verified client certificate on this call")]
    Unauthenticated,
    /// The caller is not one of the adapter's agency's record systems; the reason says
    /// whose certificate it is or which integration is missing.
    #[error("{0}")]
    NotPublisher(String),
    /// The agency's publish rate has not `records` records left now; it has after `wait`.
    #[error(
        "publish rate limit of {} exceeded ({} records per second, bursts of {}): \
         none of the call's {records} records was published",
        agency_slug(*agency),
        rate.per_second(),
        rate.burst()
    )]
    RateExhausted {
        /// Whose rate.
        agency: Agency,
        /// How many records the call carried.
        records: usize,
        /// The agency's rate.
        rate: Rate,
        /// How long until the records are there.
        wait: Duration,
    },
    /// A batch of no items, or of more than one batch may carry.
    #[error("invalid request: {violations}")]
    BatchSize {
        /// The broken rule, on `items`.
        violations: Violations,
        /// Whether the batch was over the limit (rather than empty).
        too_many: bool,
    },
    /// Items broke the agency's rules: every broken rule, by field.
    #[error("invalid request: {0}")]
    Invalid(Violations),
    /// The broker did not acknowledge a record.
    #[error("a {record_type} record of {} was not acknowledged: {error}", agency_slug(*agency))]
    NotAcknowledged {
        /// Whose record.
        agency: Agency,
        /// Its record type.
        record_type: String,
        /// Why the producer gave up on it.
        error: PublishError,
    },
    /// Items of a batch were not acknowledged: `failed` of them (some, when the count is
    /// unknown); `first` is the first failure. Others may have been published.
    #[error("{} items of a batch were not acknowledged, first: {first}", count_or_some(*failed))]
    BatchNotAcknowledged {
        /// The first failure.
        first: Box<AdapterError>,
        /// How many items failed, when known.
        failed: Option<usize>,
    },
}

impl AdapterError {
    /// A record of `agency` the broker did not acknowledge. Logged per call at debug only:
    /// the producer logs the broker's state changes and a fatal error once, which is what
    /// an operator acts on; a WARN per call would flood the log during an outage.
    pub(super) fn not_acknowledged(
        agency: Agency,
        record_type: &str,
        error: PublishError,
    ) -> AdapterError {
        tracing::debug!(
            agency = agency_slug(agency),
            record_type,
            error = %error,
            "publish not acknowledged"
        );
        AdapterError::NotAcknowledged {
            agency,
            record_type: record_type.to_owned(),
            error,
        }
    }

    /// The limit of `agency`'s this refusal is for, if it is for one: the publish rate, the
    /// batch size, a field's length. A failure of the broker is no limit.
    fn limit(&self) -> Option<Limit> {
        match self {
            AdapterError::RateExhausted { .. } => Some(Limit::PublishRate),
            AdapterError::BatchSize { too_many: true, .. } => Some(Limit::BatchSize),
            AdapterError::Invalid(violations) if violations.too_long() => Some(Limit::FieldLength),
            _ => None,
        }
    }
}

impl From<AdapterError> for Status {
    fn from(e: AdapterError) -> Status {
        match e {
            AdapterError::Unauthenticated => Status::unauthenticated(e.to_string()),
            AdapterError::NotPublisher(reason) => Status::permission_denied(reason),
            e @ AdapterError::RateExhausted { wait, .. } => exhausted(e.to_string(), wait),
            AdapterError::BatchSize { violations, .. } | AdapterError::Invalid(violations) => {
                invalid_argument(&violations)
            }
            AdapterError::NotAcknowledged { error, .. } => unacknowledged(error),
            AdapterError::BatchNotAcknowledged { first, failed } => {
                let first = Status::from(*first);
                Status::new(
                    first.code(),
                    format!(
                        "{} items were not acknowledged ({}); some others may have been \
                         published: retry the whole batch, versions make that safe",
                        count_or_some(failed),
                        first.message()
                    ),
                )
            }
        }
    }
}

/// The status for a record the broker did not acknowledge for `error`.
fn unacknowledged(error: PublishError) -> Status {
    match error {
        PublishError::Unavailable(reason) => Status::unavailable(format!(
            "the broker did not acknowledge the record: {reason}; retrying is safe"
        )),
        PublishError::DeadlineExceeded => Status::deadline_exceeded(
            "the deadline ran out before the broker acknowledged the record (the broker is \
             reachable: allow more time); the record may still be published; retrying with \
             the same version is safe",
        ),
        PublishError::TooLarge => {
            Status::invalid_argument("record is larger than the broker accepts")
        }
        // Not the reason itself: it is librdkafka's internal detail, logged by the producer.
        PublishError::Fatal(_) => Status::unavailable(
            "this adapter's producer failed permanently and the adapter is restarting; \
             retry with the same version once it is back (another instance may serve it \
             sooner)",
        ),
    }
}

/// `n`, or "some" when the count is unknown.
fn count_or_some(n: Option<usize>) -> String {
    n.map_or_else(|| "some".to_owned(), |n| n.to_string())
}

/// The answer to a publish call of `agency` that carried `records` records and started at
/// `started`, counted: the limit a refusal is for, then the call's outcome.
pub(super) fn answer<T>(
    telemetry: &Telemetry,
    agency: Agency,
    records: usize,
    started: Instant,
    result: Result<T, AdapterError>,
) -> Result<T, Status> {
    let result = result.map_err(|e| {
        if let Some(limit) = e.limit() {
            telemetry.emit(Limited { limit, agency });
        }
        Status::from(e)
    });
    telemetry.emit(Published {
        agency,
        records,
        outcome: outcome_of(&result),
        elapsed: started.elapsed(),
    });
    result
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    fn unavailable(record_type: &str) -> AdapterError {
        AdapterError::NotAcknowledged {
            agency: Agency::Housing,
            record_type: record_type.into(),
            error: PublishError::Unavailable("no broker".into()),
        }
    }

    #[test]
    fn an_exhausted_rate_names_the_agency_its_rate_and_the_wait_and_is_counted() {
        let e = AdapterError::RateExhausted {
            agency: Agency::Housing,
            records: 30,
            rate: Rate::new(10, 20),
            wait: Duration::from_millis(1500),
        };
        assert_eq!(e.limit(), Some(Limit::PublishRate));
        let status = Status::from(e);
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(
            status.message(),
            "publish rate limit of housing exceeded (10 records per second, bursts of 20): \
             none of the call's 30 records was published; retry in 1.500 s"
        );
    }

    #[test]
    fn a_batch_not_acknowledged_keeps_its_first_failures_code_and_says_how_many_failed() {
        let status = Status::from(AdapterError::BatchNotAcknowledged {
            first: Box::new(unavailable("property_title")),
            failed: Some(3),
        });
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(
            status.message(),
            "3 items were not acknowledged (the broker did not acknowledge the record: no \
             broker; retrying is safe); some others may have been published: retry the whole \
             batch, versions make that safe"
        );
        let status = Status::from(AdapterError::BatchNotAcknowledged {
            first: Box::new(unavailable("property_title")),
            failed: None,
        });
        assert!(
            status
                .message()
                .starts_with("some items were not acknowledged (")
        );
    }

    #[test]
    fn only_refusals_for_a_limit_are_counted_as_such() {
        let mut too_long = Violations::default();
        too_long.add_too_long("record.name", "too long");
        let mut wrong = Violations::default();
        wrong.add("record.name", "is required");
        let refusals = [
            (AdapterError::Invalid(too_long), Some(Limit::FieldLength)),
            (AdapterError::Invalid(wrong.clone()), None),
            (
                AdapterError::BatchSize {
                    violations: wrong.clone(),
                    too_many: true,
                },
                Some(Limit::BatchSize),
            ),
            (
                AdapterError::BatchSize {
                    violations: wrong,
                    too_many: false,
                },
                None,
            ),
            (unavailable("loan"), None),
            (AdapterError::Unauthenticated, None),
            (
                AdapterError::NotPublisher("not an integration".into()),
                None,
            ),
        ];
        for (e, limit) in refusals {
            assert_eq!(e.limit(), limit, "{e}");
        }
    }

    #[test]
    fn refused_callers_are_unauthenticated_or_denied_with_the_reason() {
        let status = Status::from(AdapterError::Unauthenticated);
        assert_eq!(status.code(), Code::Unauthenticated);
        assert_eq!(
            status.message(),
            "no verified client certificate on this call"
        );
        let status = Status::from(AdapterError::NotPublisher("not an integration".into()));
        assert_eq!(status.code(), Code::PermissionDenied);
        assert_eq!(status.message(), "not an integration");
    }
}
