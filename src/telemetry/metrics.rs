//! Govlink's metrics: one registry per process, passed down to every component (no
//! globals). Names follow `govlink_<name>_<unit>`; no label carries a resident ID, a
//! record id or any other value with many distinct values. Components do not touch the
//! families directly: they emit the events of [`super::events`], which log and count in
//! one place.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::proto::CaseKind;

/// Every metric family govlink exposes, as named in the exposition (counters with their
/// `_total`, histograms without their `_bucket`/`_sum`/`_count` series).
pub const NAMES: &[&str] = &[
    "govlink_publishes_total",
    "govlink_publish_duration_seconds",
    "govlink_producer_queue_depth",
    "govlink_producer_in_flight",
    "govlink_materializer_lag_events",
    "govlink_records_applied_total",
    "govlink_dead_letters_total",
    "govlink_lookups_total",
    "govlink_lookup_duration_seconds",
    "govlink_audit_writes_total",
    "govlink_audit_unindexed_entries_total",
    "govlink_redis_errors_total",
    "govlink_limited_requests_total",
    "govlink_unauthenticated_calls_total",
    "govlink_cases_total",
    "govlink_case_duration_seconds",
    "govlink_cases_open",
    "govlink_case_steps_open",
    "govlink_case_steps_overdue",
    "govlink_certificate_expiry_seconds",
];

/// Why a gRPC call was refused `UNAUTHENTICATED` for its client certificate: the values
/// of `govlink_unauthenticated_calls_total{reason}`, each a `tls::Refusal` kind.
pub const UNAUTHENTICATED_REASONS: [&str; 9] = [
    "no_certificate",
    "untrusted_issuer",
    "expired",
    "not_yet_valid",
    "revoked",
    "unknown_revocation_status",
    "wrong_purpose",
    "no_identity",
    "other",
];

/// Why the access index left an audit entry out: the values of
/// `govlink_audit_unindexed_entries_total{reason}`.
pub const UNINDEXED_REASONS: [&str; 3] = ["unverified_start", "unknown_chain", "unlinked"];

/// A limit a request can run into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// An agency's records per second (`RESOURCE_EXHAUSTED`).
    PublishRate,
    /// A requester's lookups and checks per second (`RESOURCE_EXHAUSTED`).
    LookupRate,
    /// Items in one batch publish (`INVALID_ARGUMENT` on `items`).
    BatchSize,
    /// A string or repeated field longer than the record contract allows
    /// (`INVALID_ARGUMENT` on that field).
    FieldLength,
    /// A request message larger than a server decodes (`RESOURCE_EXHAUSTED`).
    MessageSize,
    /// Watches of people's data accesses open on one resolver (`RESOURCE_EXHAUSTED`).
    AccessWatches,
}

impl Limit {
    /// Every limit.
    pub const ALL: [Limit; 6] = [
        Limit::PublishRate,
        Limit::LookupRate,
        Limit::BatchSize,
        Limit::FieldLength,
        Limit::MessageSize,
        Limit::AccessWatches,
    ];

    /// The limit as a label value.
    pub fn name(self) -> &'static str {
        match self {
            Limit::PublishRate => "publish_rate",
            Limit::LookupRate => "lookup_rate",
            Limit::BatchSize => "batch_size",
            Limit::FieldLength => "field_length",
            Limit::MessageSize => "message_size",
            Limit::AccessWatches => "access_watches",
        }
    }
}

/// A case kind as a label value.
pub fn kind_name(kind: CaseKind) -> &'static str {
    match kind {
        CaseKind::PropertyTransfer => "property-transfer",
        CaseKind::SocialSecurityTransfer => "social-security-transfer",
        CaseKind::ProvidentFundTransfer => "provident-fund-transfer",
        CaseKind::HouseholdMove => "household-move",
        CaseKind::ProvidentFundLoan => "provident-fund-loan",
        CaseKind::DataObjection => "data-objection",
        CaseKind::Unspecified => "unspecified",
    }
}

/// Labels: an agency and an outcome (`acked`, or the gRPC code of a refusal).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AgencyOutcome {
    pub agency: &'static str,
    pub outcome: &'static str,
}

/// Labels: an agency.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AgencyLabel {
    pub agency: &'static str,
}

/// Labels: a topic partition.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

/// Labels: an outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

/// Labels: why a message was dead-lettered, as a kind (never the free-text reason).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

/// Labels of a lookup: the method, the purpose (one the policy knows, else `other`) and
/// the decision.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LookupLabels {
    pub method: &'static str,
    pub purpose: String,
    pub decision: &'static str,
}

/// Labels: a gRPC method.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabel {
    pub method: &'static str,
}

/// Labels: the component that met the error.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ComponentLabel {
    pub component: &'static str,
}

/// Labels of a request refused by a limit: which limit (`publish_rate`, `lookup_rate`,
/// `batch_size`, `field_length`, `message_size`) and the agency that sent it (the
/// adapter's, or the requester's; `unspecified` when the call does not say).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabels {
    pub limit: &'static str,
    pub agency: &'static str,
}

/// Labels of a case change: its kind and what happened (`opened`, `completed`,
/// `cancelled`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CaseLabels {
    pub kind: &'static str,
    pub change: &'static str,
}

/// Labels: a case kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

/// Labels: which configured certificate (`server`, `client_ca`, `kafka_ca`,
/// `kafka_client`, `redis_ca`; never a subject name).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CertificateLabel {
    pub certificate: &'static str,
}

/// The `notAfter` of each configured certificate, exposed as the seconds left until it,
/// computed at each scrape: a value set when the file was read would stand still.
#[derive(Debug, Default)]
pub(crate) struct CertificateExpiry {
    /// Certificate label → `notAfter` in seconds since the Unix epoch.
    not_after: Mutex<BTreeMap<&'static str, i64>>,
}

impl CertificateExpiry {
    /// Records the `notAfter` of `certificate` (replacing what an earlier read said).
    pub(crate) fn set(&self, certificate: &'static str, not_after: i64) {
        self.not_after
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(certificate, not_after);
    }
}

impl Collector for CertificateExpiry {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let not_after = self
            .not_after
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        // Like a family without series: nothing to expose before a certificate is read.
        if not_after.is_empty() {
            return Ok(());
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let mut metric = encoder.encode_descriptor(
            "certificate_expiry",
            "Seconds until the notAfter of a configured certificate (the earliest of its \
             file), negative once expired, by certificate",
            Some(&Unit::Seconds),
            MetricType::Gauge,
        )?;
        for (certificate, at) in not_after {
            let labels = CertificateLabel { certificate };
            ConstGauge::new(at - now).encode(metric.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// A histogram constructor, as the families need it.
type Buckets = fn() -> Histogram;

/// Request latencies: 0.5 ms to about 16 s.
fn latency_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Case durations: one minute to about 34 days.
fn case_buckets() -> Histogram {
    Histogram::new(exponential_buckets(60.0, 2.0, 16))
}

/// Every metric of a process.
pub struct Metrics {
    registry: Registry,
    pub(crate) publishes: Family<AgencyOutcome, Counter>,
    pub(crate) publish_duration: Family<AgencyLabel, Histogram, Buckets>,
    pub(crate) producer_queue_depth: Gauge,
    pub(crate) producer_in_flight: Gauge,
    pub(crate) materializer_lag: Family<TopicPartition, Gauge>,
    pub(crate) records_applied: Family<OutcomeLabel, Counter>,
    pub(crate) dead_letters: Family<ReasonLabel, Counter>,
    pub(crate) lookups: Family<LookupLabels, Counter>,
    pub(crate) lookup_duration: Family<MethodLabel, Histogram, Buckets>,
    pub(crate) audit_writes: Family<OutcomeLabel, Counter>,
    pub(crate) audit_unindexed: Family<ReasonLabel, Counter>,
    pub(crate) redis_errors: Family<ComponentLabel, Counter>,
    pub(crate) limited: Family<LimitLabels, Counter>,
    pub(crate) unauthenticated: Family<ReasonLabel, Counter>,
    pub(crate) cases: Family<CaseLabels, Counter>,
    pub(crate) case_duration: Family<KindLabel, Histogram, Buckets>,
    pub(crate) cases_open: Family<KindLabel, Gauge>,
    pub(crate) steps_open: Family<AgencyLabel, Gauge>,
    pub(crate) steps_overdue: Family<AgencyLabel, Gauge>,
    pub(crate) certificate_expiry: Arc<CertificateExpiry>,
}

/// The metrics handle components hold.
pub type Telemetry = Arc<Metrics>;

impl Metrics {
    /// A registry with every family, all at zero.
    pub fn new() -> Telemetry {
        Arc::default()
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut registry = Registry::with_prefix("govlink");
        let m = Metrics {
            publishes: Family::default(),
            publish_duration: Family::new_with_constructor(latency_buckets),
            producer_queue_depth: Gauge::default(),
            producer_in_flight: Gauge::default(),
            materializer_lag: Family::default(),
            records_applied: Family::default(),
            dead_letters: Family::default(),
            lookups: Family::default(),
            lookup_duration: Family::new_with_constructor(latency_buckets),
            audit_writes: Family::default(),
            audit_unindexed: Family::default(),
            redis_errors: Family::default(),
            limited: Family::default(),
            unauthenticated: Family::default(),
            cases: Family::default(),
            case_duration: Family::new_with_constructor(case_buckets),
            cases_open: Family::default(),
            steps_open: Family::default(),
            steps_overdue: Family::default(),
            certificate_expiry: Arc::default(),
            registry: Registry::default(),
        };
        // In this order: the exposition lists the families as they were registered.
        m.register_publishing(&mut registry);
        m.register_materializing(&mut registry);
        m.register_lookups(&mut registry);
        m.register_audit(&mut registry);
        m.register_errors_and_refusals(&mut registry);
        m.register_cases(&mut registry);
        registry.register_collector(Box::new(Arc::clone(&m.certificate_expiry)));
        m.zero_known_series();
        Metrics { registry, ..m }
    }
}

impl Metrics {
    /// Registers the families of the publish path: publishes, their duration, the
    /// producer's queue and the publish window.
    fn register_publishing(&self, r: &mut Registry) {
        r.register(
            "publishes",
            "Records published through the adapters, by agency and outcome",
            self.publishes.clone(),
        );
        r.register_with_unit(
            "publish_duration",
            "Time from a publish call to its answer, by agency",
            Unit::Seconds,
            self.publish_duration.clone(),
        );
        r.register(
            "producer_queue_depth",
            "Messages in the producer's queue, not yet acknowledged by the broker",
            self.producer_queue_depth.clone(),
        );
        r.register(
            "producer_in_flight",
            "Records held in the publish window, awaiting their broker ack",
            self.producer_in_flight.clone(),
        );
    }

    /// Registers the families of the materializer: its lag, the records it applied and
    /// the events it dead-lettered.
    fn register_materializing(&self, r: &mut Registry) {
        r.register_with_unit(
            "materializer_lag",
            "Events in a record topic partition not yet materialized",
            Unit::Other("events".into()),
            self.materializer_lag.clone(),
        );
        r.register(
            "records_applied",
            "Record events materialized: applied, or skipped as older than the stored version",
            self.records_applied.clone(),
        );
        r.register(
            "dead_letters",
            "Events sent to the dead-letter topic, by reason",
            self.dead_letters.clone(),
        );
    }

    /// Registers the families of lookups and checks: their count and their duration.
    fn register_lookups(&self, r: &mut Registry) {
        r.register(
            "lookups",
            "Lookups and checks, by method, purpose and decision",
            self.lookups.clone(),
        );
        r.register_with_unit(
            "lookup_duration",
            "Time from a lookup call to its answer, by method",
            Unit::Seconds,
            self.lookup_duration.clone(),
        );
    }

    /// Registers the families of the audit trail: its writes and the entries the access
    /// index left out.
    fn register_audit(&self, r: &mut Registry) {
        r.register(
            "audit_writes",
            "Audit trail entries: written, or failed",
            self.audit_writes.clone(),
        );
        r.register(
            "audit_unindexed_entries",
            "Audit entries the access index left out: of chains whose start did not verify, \
             or not linking to their chain's verified head, by reason",
            self.audit_unindexed.clone(),
        );
    }

    /// Registers the families of failed Redis calls and of requests refused by a limit or
    /// for their client certificate.
    fn register_errors_and_refusals(&self, r: &mut Registry) {
        r.register(
            "redis_errors",
            "Redis calls that failed, by component",
            self.redis_errors.clone(),
        );
        r.register(
            "limited_requests",
            "Requests refused by a limit (rate, batch size, field length, message size), by \
             limit and agency",
            self.limited.clone(),
        );
        r.register(
            "unauthenticated_calls",
            "gRPC calls refused UNAUTHENTICATED for their client certificate (none, another \
             CA, expired, revoked, ...), by reason",
            self.unauthenticated.clone(),
        );
    }

    /// Registers the families of the case engine: case changes and durations, and the
    /// cases and steps open now.
    fn register_cases(&self, r: &mut Registry) {
        r.register(
            "cases",
            "Cases opened, completed and cancelled, by kind",
            self.cases.clone(),
        );
        r.register_with_unit(
            "case_duration",
            "Time from a case's opening to its completion, by kind",
            Unit::Seconds,
            self.case_duration.clone(),
        );
        r.register(
            "cases_open",
            "Cases open now, by kind",
            self.cases_open.clone(),
        );
        r.register(
            "case_steps_open",
            "Case steps open now, by agency",
            self.steps_open.clone(),
        );
        r.register(
            "case_steps_overdue",
            "Case steps open past their due date, by agency",
            self.steps_overdue.clone(),
        );
    }
}

impl Metrics {
    /// Creates, at zero, the series whose labels are known in advance, so dashboards and
    /// alerts see them before anything happened (a family without series is not exposed).
    fn zero_known_series(&self) {
        for agency in crate::records::AGENCIES.map(crate::records::agency_slug) {
            let _ = self.publishes.get_or_create(&AgencyOutcome {
                agency,
                outcome: "ok",
            });
            let _ = self.publish_duration.get_or_create(&AgencyLabel { agency });
            let _ = self.steps_open.get_or_create(&AgencyLabel { agency });
            let _ = self.steps_overdue.get_or_create(&AgencyLabel { agency });
            for limit in Limit::ALL.map(Limit::name) {
                let _ = self.limited.get_or_create(&LimitLabels { limit, agency });
            }
        }
        for reason in UNAUTHENTICATED_REASONS {
            let _ = self.unauthenticated.get_or_create(&ReasonLabel { reason });
        }
        for outcome in ["applied", "stale"] {
            let _ = self
                .records_applied
                .get_or_create(&OutcomeLabel { outcome });
        }
        for outcome in ["written", "failed"] {
            let _ = self.audit_writes.get_or_create(&OutcomeLabel { outcome });
        }
        for reason in UNINDEXED_REASONS {
            let _ = self.audit_unindexed.get_or_create(&ReasonLabel { reason });
        }
        for kind in [
            CaseKind::PropertyTransfer,
            CaseKind::SocialSecurityTransfer,
            CaseKind::ProvidentFundTransfer,
            CaseKind::HouseholdMove,
            CaseKind::ProvidentFundLoan,
        ]
        .map(kind_name)
        {
            for change in ["opened", "completed", "cancelled"] {
                let _ = self.cases.get_or_create(&CaseLabels { kind, change });
            }
            let _ = self.case_duration.get_or_create(&KindLabel { kind });
            let _ = self.cases_open.get_or_create(&KindLabel { kind });
        }
    }
}
