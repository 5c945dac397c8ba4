//! Telemetry events: each is a type that both logs and counts, so a log line and its
//! counter cannot drift apart. A component builds the event where the thing happened
//! and hands it to [`Metrics::emit`].

use std::time::Duration;

use tonic::Code;

use super::metrics::{
    AgencyLabel, AgencyOutcome, CaseLabels, ComponentLabel, KindLabel, LimitLabels, LookupLabels,
    MethodLabel, Metrics, OutcomeLabel, ReasonLabel,
};
use crate::proto::{Agency, CaseKind};

pub use super::metrics::{Limit, kind_name};
use crate::records::agency_slug;

/// Something worth counting (and usually logging).
pub trait Event {
    /// Logs the event and counts it in `metrics`.
    fn emit(self, metrics: &Metrics);
}

impl Metrics {
    /// Logs and counts `event`.
    pub fn emit(&self, event: impl Event) {
        event.emit(self);
    }
}

/// The outcome label of a call's result: `ok`, or its gRPC code in snake case.
pub fn outcome_of<T>(result: &Result<T, tonic::Status>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(status) => code_name(status.code()),
    }
}

fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "cancelled",
        Code::Unknown => "unknown",
        Code::InvalidArgument => "invalid_argument",
        Code::DeadlineExceeded => "deadline_exceeded",
        Code::NotFound => "not_found",
        Code::AlreadyExists => "already_exists",
        Code::PermissionDenied => "permission_denied",
        Code::ResourceExhausted => "resource_exhausted",
        Code::FailedPrecondition => "failed_precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out_of_range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data_loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

/// A publish call answered: `records` records of `agency`, acknowledged (`ok`) or
/// refused with a gRPC code.
pub struct Published {
    pub agency: Agency,
    pub records: usize,
    pub outcome: &'static str,
    pub elapsed: Duration,
}

impl Event for Published {
    fn emit(self, m: &Metrics) {
        let agency = agency_slug(self.agency);
        tracing::debug!(
            agency,
            records = self.records,
            outcome = self.outcome,
            elapsed_ms = self.elapsed.as_secs_f64() * 1000.0,
            "publish answered"
        );
        m.publishes
            .get_or_create(&AgencyOutcome {
                agency,
                outcome: self.outcome,
            })
            .inc_by(self.records as u64);
        m.publish_duration
            .get_or_create(&AgencyLabel { agency })
            .observe(self.elapsed.as_secs_f64());
    }
}

/// A batch materialized: events applied, and events older than what the store had.
pub struct BatchMaterialized {
    pub events: usize,
    pub applied: usize,
    pub stale: usize,
    pub rejected: usize,
}

impl Event for BatchMaterialized {
    fn emit(self, m: &Metrics) {
        tracing::debug!(
            events = self.events,
            applied = self.applied,
            stale = self.stale,
            rejected = self.rejected,
            "batch materialized"
        );
        let count = |outcome, n: usize| {
            m.records_applied
                .get_or_create(&OutcomeLabel { outcome })
                .inc_by(n as u64);
        };
        count("applied", self.applied);
        count("stale", self.stale);
    }
}

/// An event sent to the dead-letter topic.
pub struct DeadLettered<'a> {
    /// What kind of problem (a label: few values).
    pub kind: &'static str,
    /// The problem in words (logged, never a label).
    pub reason: &'a str,
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
}

impl Event for DeadLettered<'_> {
    fn emit(self, m: &Metrics) {
        tracing::warn!(
            topic = self.topic,
            partition = self.partition,
            offset = self.offset,
            kind = self.kind,
            reason = self.reason,
            "event dead-lettered"
        );
        m.dead_letters
            .get_or_create(&ReasonLabel { reason: self.kind })
            .inc();
    }
}

/// A lookup or check answered: `allowed`, `denied` by the policy, `invalid` (refused
/// for its fields), `limited` (refused by the requester's rate) or `failed` (the store or
/// the audit trail could not be reached).
pub struct LookupAnswered {
    pub method: &'static str,
    /// A purpose the policy knows, else `other` (a label: few values).
    pub purpose: String,
    pub decision: &'static str,
    pub elapsed: Duration,
}

impl Event for LookupAnswered {
    fn emit(self, m: &Metrics) {
        let decision = self.decision;
        tracing::debug!(
            method = self.method,
            purpose = self.purpose,
            decision,
            elapsed_ms = self.elapsed.as_secs_f64() * 1000.0,
            "lookup answered"
        );
        m.lookups
            .get_or_create(&LookupLabels {
                method: self.method,
                purpose: self.purpose,
                decision,
            })
            .inc();
        m.lookup_duration
            .get_or_create(&MethodLabel {
                method: self.method,
            })
            .observe(self.elapsed.as_secs_f64());
    }
}

/// An audit entry written, or not.
pub struct AuditWritten<'a> {
    pub failure: Option<&'a str>,
}

impl Event for AuditWritten<'_> {
    fn emit(self, m: &Metrics) {
        let outcome = match self.failure {
            None => "written",
            Some(error) => {
                tracing::error!(error, "audit entry not written");
                "failed"
            }
        };
        m.audit_writes
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }
}

/// Audit entries the access indexer left out, for `reason` (one of
/// [`super::metrics::UNINDEXED_REASONS`]). The indexer logs each chain once itself.
pub struct AuditUnindexed {
    pub reason: &'static str,
    pub entries: u64,
}

impl Event for AuditUnindexed {
    fn emit(self, m: &Metrics) {
        m.audit_unindexed
            .get_or_create(&ReasonLabel {
                reason: self.reason,
            })
            .inc_by(self.entries);
    }
}

/// A Redis call that failed.
pub struct RedisFailed<'a> {
    pub component: &'static str,
    pub error: &'a dyn std::fmt::Display,
}

impl Event for RedisFailed<'_> {
    fn emit(self, m: &Metrics) {
        tracing::warn!(component = self.component, error = %self.error, "redis call failed");
        m.redis_errors
            .get_or_create(&ComponentLabel {
                component: self.component,
            })
            .inc();
    }
}

/// A request refused by `limit`. Counted once per request, however many records or
/// fields were over.
pub struct Limited {
    pub limit: Limit,
    /// The agency that sent it (the adapter's, or the requester's);
    /// `Agency::Unspecified` when the call does not say.
    pub agency: Agency,
}

impl Event for Limited {
    fn emit(self, m: &Metrics) {
        let (limit, agency) = (self.limit.name(), agency_slug(self.agency));
        // Debug only: under overload every refused call would log, and the counter is
        // what an operator watches.
        tracing::debug!(limit, agency, "request refused by a limit");
        m.limited
            .get_or_create(&LimitLabels { limit, agency })
            .inc();
    }
}

/// A call refused `UNAUTHENTICATED` for its client certificate. The reason is logged
/// once per connection where the certificate is checked (`tls: call refused`); this
/// counts every refused call.
pub struct Unauthenticated {
    /// One of [`super::metrics::UNAUTHENTICATED_REASONS`].
    pub reason: &'static str,
}

impl Event for Unauthenticated {
    fn emit(self, m: &Metrics) {
        let reason = self.reason;
        tracing::debug!(reason, "call refused: client certificate");
        m.unauthenticated
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }
}

/// What happened to a case, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseChange {
    Opened,
    /// Completed after this long open.
    Completed(Duration),
    Cancelled,
}

/// A case opened, completed or cancelled.
pub struct CaseChanged<'a> {
    pub case_id: &'a str,
    pub kind: CaseKind,
    pub change: CaseChange,
}

impl Event for CaseChanged<'_> {
    fn emit(self, m: &Metrics) {
        let kind = kind_name(self.kind);
        let change = match self.change {
            CaseChange::Opened => "opened",
            CaseChange::Completed(_) => "completed",
            CaseChange::Cancelled => "cancelled",
        };
        tracing::info!(case_id = self.case_id, kind, change, "case changed");
        m.cases.get_or_create(&CaseLabels { kind, change }).inc();
        if let CaseChange::Completed(took) = self.change {
            m.case_duration
                .get_or_create(&KindLabel { kind })
                .observe(took.as_secs_f64());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the series `series` (name and labels as exposed) in `text`.
    pub(crate) fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    /// Two publishes of housing: 100 records acked in 3 ms, 1 refused as invalid in 1 ms.
    fn emit_publishes(m: &Metrics) {
        m.emit(Published {
            agency: Agency::Housing,
            records: 100,
            outcome: "ok",
            elapsed: Duration::from_millis(3),
        });
        m.emit(Published {
            agency: Agency::Housing,
            records: 1,
            outcome: outcome_of::<()>(&Err(tonic::Status::invalid_argument("x"))),
            elapsed: Duration::from_millis(1),
        });
    }

    /// A batch of 10 events: 7 applied, 2 stale, 1 rejected.
    fn emit_batch(m: &Metrics) {
        m.emit(BatchMaterialized {
            events: 10,
            applied: 7,
            stale: 2,
            rejected: 1,
        });
    }

    /// A denied person-profile lookup for a property transfer.
    fn emit_lookup(m: &Metrics) {
        m.emit(LookupAnswered {
            method: "GetPersonProfile",
            purpose: "property-transfer".into(),
            decision: "denied",
            elapsed: Duration::from_millis(2),
        });
    }

    /// A household move completed after two minutes.
    fn emit_case(m: &Metrics) {
        m.emit(CaseChanged {
            case_id: "c",
            kind: CaseKind::HouseholdMove,
            change: CaseChange::Completed(Duration::from_secs(120)),
        });
    }

    /// A publish of housing refused for the rate, a message of no stated agency for its
    /// size.
    fn emit_refusals(m: &Metrics) {
        m.emit(Limited {
            limit: Limit::PublishRate,
            agency: Agency::Housing,
        });
        m.emit(Limited {
            limit: Limit::MessageSize,
            agency: Agency::Unspecified,
        });
    }

    #[test]
    fn publishes_count_records_by_agency_and_outcome() {
        let m = Metrics::new();
        emit_publishes(&m);
        let text = m.encode();
        let v = |series| value(&text, series);
        assert_eq!(
            v(r#"govlink_publishes_total{agency="housing",outcome="ok"}"#),
            Some(100.0)
        );
        assert_eq!(
            v(r#"govlink_publishes_total{agency="housing",outcome="invalid_argument"}"#),
            Some(1.0)
        );
        assert_eq!(
            v(r#"govlink_publish_duration_seconds_count{agency="housing"}"#),
            Some(2.0)
        );
    }

    #[test]
    fn materialized_batches_count_stale_records() {
        let m = Metrics::new();
        emit_batch(&m);
        let text = m.encode();
        assert_eq!(
            value(&text, r#"govlink_records_applied_total{outcome="stale"}"#),
            Some(2.0)
        );
    }

    #[test]
    fn lookups_count_by_method_purpose_and_decision() {
        let m = Metrics::new();
        emit_lookup(&m);
        let text = m.encode();
        assert_eq!(
            value(
                &text,
                r#"govlink_lookups_total{method="GetPersonProfile",purpose="property-transfer",decision="denied"}"#
            ),
            Some(1.0)
        );
    }

    #[test]
    fn completed_cases_count_and_time_by_kind() {
        let m = Metrics::new();
        emit_case(&m);
        let text = m.encode();
        let v = |series| value(&text, series);
        assert_eq!(
            v(r#"govlink_cases_total{kind="household-move",change="completed"}"#),
            Some(1.0)
        );
        assert_eq!(
            v(r#"govlink_case_duration_seconds_sum{kind="household-move"}"#),
            Some(120.0)
        );
    }

    #[test]
    fn refusals_count_by_limit_and_agency() {
        let m = Metrics::new();
        emit_refusals(&m);
        let text = m.encode();
        let v = |series| value(&text, series);
        assert_eq!(
            v(r#"govlink_limited_requests_total{limit="publish_rate",agency="housing"}"#),
            Some(1.0)
        );
        assert_eq!(
            v(r#"govlink_limited_requests_total{limit="message_size",agency="unspecified"}"#),
            Some(1.0)
        );
        // Known series exist at zero before anything is refused.
        assert_eq!(
            v(r#"govlink_limited_requests_total{limit="lookup_rate",agency="provident-fund"}"#),
            Some(0.0)
        );
    }

    #[test]
    fn every_family_is_named_as_names_says() {
        let m = Metrics::new();
        // One of each event, so that families without known series are exposed too.
        emit_publishes(&m);
        emit_batch(&m);
        emit_lookup(&m);
        emit_case(&m);
        emit_refusals(&m);
        let text = m.encode();
        for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
            let name = line.split_whitespace().nth(2).unwrap();
            let exposed = match line.split_whitespace().nth(3) {
                Some("counter") => format!("{name}_total"),
                _ => name.to_owned(),
            };
            assert!(
                super::super::metrics::NAMES.contains(&exposed.as_str()),
                "{exposed} is not in NAMES"
            );
        }
    }
}
