//! Micro-benchmarks of the per-record hot path: validating what an agency sends, encoding
//! and decoding the event, the store's batch write, and masking what a lookup returns.
//!
//! `cargo bench --bench hot_path` runs them all (a couple of minutes); a filter after `--`
//! runs some (`cargo bench --bench hot_path -- store/`). With `GOVLINK_BENCH_REDIS` set to
//! a Redis URL the store's batch write is measured on Redis too, under a key prefix of its
//! own that is deleted afterwards.
//!
//! Only the measured operation is timed: fixtures, clones of inputs and the drop of
//! outputs are kept out of the measurement (see each benchmark).

mod records;
mod store;

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use govlink::identity::Requester;
use govlink::proto::RecordEvent;
use govlink::records::{Horizon, RecordType, Violations, validate_meta, validate_payload};
use govlink::resolver::policy::{Decision, MaskKind, Policy, Purpose, mask};
use prost::Message as _;

/// The default `max_clock_skew_ms`: how far ahead of now a record's dates may lie.
const MAX_CLOCK_SKEW: Duration = Duration::from_secs(3600);

/// The access policy the demo runs with.
const POLICY: &str = include_str!("../../deploy/policy.toml");

/// The violations of one payload, as an adapter collects them for one publish (which
/// also writes its identifiers back in their one spelling).
fn violations_of(
    payload: &mut govlink::proto::record_event::Payload,
    horizon: &Horizon,
) -> Violations {
    let mut v = Violations::default();
    validate_payload(payload, "record", horizon, &mut v);
    v
}

/// `validate/<record type>`: one valid payload of each type; `validate/meta`: the publish
/// metadata; `validate/invalid_property_title`: a title with seven violations.
fn validation(c: &mut Criterion) {
    let horizon = Horizon::now(MAX_CLOCK_SKEW);
    let payloads = records::valid_payloads();
    let types: Vec<RecordType> = payloads
        .iter()
        .map(|(_, p)| RecordType::of_payload(p))
        .collect();
    assert_eq!(
        types,
        RecordType::ALL,
        "one valid payload of every record type"
    );
    let mut group = c.benchmark_group("validate");
    for (name, mut payload) in payloads {
        let found = violations_of(&mut payload, &horizon);
        assert!(found.is_empty(), "the {name} fixture is invalid: {found}");
        group.bench_function(name, |b| {
            b.iter(|| violations_of(black_box(&mut payload), &horizon));
        });
    }
    let meta = Some(records::meta("title-0001", 3));
    group.bench_function("meta", |b| {
        b.iter(|| {
            let mut v = Violations::default();
            validate_meta(black_box(meta.as_ref()), "meta", &horizon, &mut v);
            v
        });
    });
    let mut invalid = records::invalid_title();
    let found = violations_of(&mut invalid, &horizon);
    assert_eq!(
        found.len(),
        7,
        "the invalid title breaks seven rules: {found}"
    );
    group.bench_function("invalid_property_title", |b| {
        b.iter(|| violations_of(black_box(&mut invalid), &horizon));
    });
    group.finish();
}

/// `encode/record_event`: the envelope an adapter builds around a validated property
/// title (subjects, event id, times, key) and its protobuf encoding; the input's clone
/// and the output's drop are not timed. `decode/record_event`: decoding it back, as the
/// materializer does per message (the drop is not timed).
fn encoding(c: &mut Criterion) {
    let (_, payload) = records::valid_payloads()
        .into_iter()
        .find(|(name, _)| *name == "property_title")
        .expect("a property title fixture");
    let meta = records::meta("title-0001", 3);
    let mut group = c.benchmark_group("encode");
    group.bench_function("record_event", |b| {
        b.iter_batched(
            || (meta.clone(), payload.clone()),
            |(meta, payload)| {
                let (key, event) = records::envelope(meta, payload);
                (key, event.encode_to_vec())
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();

    let (_, event) = records::envelope(meta, payload);
    let bytes = event.encode_to_vec();
    let mut group = c.benchmark_group("decode");
    group.bench_function("record_event", |b| {
        b.iter_with_large_drop(|| RecordEvent::decode(black_box(bytes.as_slice())));
    });
    group.finish();
}

/// `mask/<kind>`: the masking rules on typical values; `mask/access_show`: a resident ID,
/// a name and an address through [`Access::show`](govlink::resolver::policy::Access::show)
/// under the housing transfer window's grant, which unmasks none of them (the profile's
/// assembly itself is private to the query layer); `policy/decide`: finding that grant.
fn masking(c: &mut Criterion) {
    let id = records::person(records::PEOPLE[0]);
    let name = "欧阳娜娜";
    let mut group = c.benchmark_group("mask");
    group.bench_function("resident_id", |b| {
        b.iter(|| mask::resident_id(black_box(&id)));
    });
    group.bench_function("name", |b| b.iter(|| mask::name(black_box(name))));
    group.bench_function("address", |b| {
        b.iter(|| mask::address(black_box(records::ADDRESS)));
    });

    let policy = Policy::parse(POLICY).expect("deploy/policy.toml is valid");
    let requester = Requester::parse("housing/transfer-window").expect("a requester");
    let purpose = Purpose::parse("property-transfer").expect("a purpose");
    let Decision::Allowed(access) = policy.decide(&requester, &purpose) else {
        panic!("deploy/policy.toml grants housing/transfer-window property-transfer");
    };
    assert!(
        MaskKind::ALL.into_iter().all(|k| !access.is_unmasked(k)),
        "the grant masks every kind"
    );
    group.bench_function("access_show", |b| {
        b.iter(|| {
            let access = black_box(&access);
            (
                access.show(MaskKind::ResidentId, black_box(&id)).len(),
                access.show(MaskKind::Name, black_box(name)).len(),
                access
                    .show(MaskKind::Address, black_box(records::ADDRESS))
                    .len(),
            )
        });
    });
    group.finish();

    let mut group = c.benchmark_group("policy");
    group.bench_function("decide", |b| {
        b.iter(|| policy.decide(black_box(&requester), black_box(&purpose)));
    });
    group.finish();
}

/// Short runs: enough for stable medians of these operations, and the whole suite ends
/// in a couple of minutes.
fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = hot_path;
    config = config();
    targets = validation, encoding, store::memory, store::redis, masking
}
criterion_main!(hot_path);
