//! Govlink's metrics: one registry per process, passed down to every component (no
//! globals). Names follow `govlink_<name>_<unit>`; no label carries a resident ID, a
//! record id or any other value with many distinct values.

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
    "govlink_redis_errors_total",
    "govlink_cases_total",
    "govlink_case_duration_seconds",
    "govlink_case_steps_open",
    "govlink_case_steps_overdue",
];
