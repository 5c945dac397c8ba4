use redis::{ErrorKind, RedisError};
use tonic::Code;

use super::*;
use crate::resolver::store::NotReady;
use crate::telemetry::metrics::Metrics;

/// The value of `series` (name and labels, as exposed) in `telemetry`; 0 when absent.
fn metric(telemetry: &Telemetry, series: &str) -> f64 {
    telemetry
        .encode()
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

const RESOLVER_REDIS_ERRORS: &str = r#"govlink_redis_errors_total{component="resolver"}"#;
const HOUSING_FIELD_LENGTH: &str =
    r#"govlink_limited_requests_total{limit="field_length",agency="housing"}"#;

fn redis_down() -> RedisError {
    RedisError::from((ErrorKind::Io, "connection refused"))
}

/// The answer to `e` for a housing requester, and what it moved: Redis failures of the
/// resolver, field-length refusals of housing.
fn answer(e: QueryError) -> (Status, f64, f64) {
    let telemetry = Metrics::new();
    let status = e.into_status(Agency::Housing, &telemetry);
    (
        status,
        metric(&telemetry, RESOLVER_REDIS_ERRORS),
        metric(&telemetry, HOUSING_FIELD_LENGTH),
    )
}

fn position() -> Position {
    Position {
        topic: "p.govlink.records.housing.v1".into(),
        partition: 2,
        offset: 7,
    }
}

#[test]
fn every_failure_keeps_its_code_and_message() {
    let mut v = Violations::default();
    v.add("person_id", "is required");
    let cases = [
        (
            QueryError::Invalid(v),
            Code::InvalidArgument,
            "invalid request: person_id: is required",
        ),
        (
            QueryError::Denied("no grant".into()),
            Code::PermissionDenied,
            "no grant",
        ),
        (
            QueryError::NotFound("no such record"),
            Code::NotFound,
            "no such record",
        ),
        (
            QueryError::NotMaterialized(position()),
            Code::DeadlineExceeded,
            "p.govlink.records.housing.v1/2 not materialized up to offset 7 before the deadline",
        ),
        (
            QueryError::Store(StoreError::NotReady(NotReady::Rebuilding)),
            Code::Unavailable,
            "a rebuild of the record store from the topics is running; retry later",
        ),
        (
            QueryError::Store(StoreError::Redis(redis_down())),
            Code::Unavailable,
            "the record store is unavailable; retry later",
        ),
        (
            QueryError::Store(StoreError::NoAnswer),
            Code::Unavailable,
            "the record store is unavailable; retry later",
        ),
        (
            QueryError::Audit(AuditError::DeadlineExceeded),
            Code::Unavailable,
            "the audit trail cannot be written, so no answer is given; retry later",
        ),
        (
            QueryError::Index(IndexError::Redis(redis_down())),
            Code::Unavailable,
            "the access index is unavailable; retry later",
        ),
        (
            QueryError::Corrupt("stored record x: bad".into()),
            Code::Internal,
            "internal error",
        ),
    ];
    for (e, code, message) in cases {
        let (status, _, _) = answer(e);
        assert_eq!((status.code(), status.message()), (code, message));
    }
}

#[test]
fn a_redis_failure_of_the_store_or_the_index_is_counted_as_the_resolvers() {
    let counted = [
        QueryError::Store(StoreError::Redis(redis_down())),
        QueryError::Store(StoreError::NoAnswer),
        QueryError::Store(StoreError::Corrupt("a reply of the wrong shape".into())),
        QueryError::Index(IndexError::Redis(redis_down())),
        QueryError::Index(IndexError::Corrupt("an entry of the wrong shape".into())),
    ];
    for e in counted {
        let shown = e.to_string();
        assert_eq!(answer(e).1, 1.0, "{shown}");
    }
    let not_counted = [
        QueryError::Store(StoreError::NotReady(NotReady::Lost)),
        QueryError::Audit(AuditError::DeadlineExceeded),
        QueryError::Denied("no grant".into()),
        QueryError::NotFound("no such record"),
        QueryError::NotMaterialized(position()),
        QueryError::Corrupt("stored record x: bad".into()),
    ];
    for e in not_counted {
        let shown = e.to_string();
        assert_eq!(answer(e).1, 0.0, "{shown}");
    }
}

#[test]
fn a_field_over_its_length_is_counted_as_a_limit_of_the_callers_agency() {
    let mut long = Violations::default();
    long.add_too_long("seller_ids", "at most 16 parties");
    let (status, redis, limited) = answer(QueryError::Invalid(long));
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!((redis, limited), (0.0, 1.0));

    let mut malformed = Violations::default();
    malformed.add("person_id", "not a resident ID number");
    assert_eq!(answer(QueryError::Invalid(malformed)).2, 0.0);
}

#[test]
fn a_check_refused_for_its_parameters_names_the_field() {
    let field = |e: CheckError| match QueryError::from(e) {
        QueryError::Invalid(v) => v.iter().map(|v| v.field.clone()).collect::<Vec<_>>(),
        other => panic!("{other}"),
    };
    assert_eq!(field(CheckError::NoSellers), ["seller_ids"]);
    assert_eq!(field(CheckError::NoBuyers), ["buyer_ids"]);
    let repeated = |role| CheckError::DuplicateParty { role, position: 2 };
    assert_eq!(field(repeated(PartyRole::Seller)), ["seller_ids"]);
    assert_eq!(field(repeated(PartyRole::Buyer)), ["buyer_ids"]);
    let both = CheckError::SellerIsBuyer {
        seller: 1,
        buyer: 1,
    };
    assert_eq!(field(both), ["seller_ids"]);
    assert_eq!(field(CheckError::SameRegion), ["to_region"]);
}
