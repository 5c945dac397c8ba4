//! `store/<memory|redis>/…`: the store applying one materializer batch of 500 record
//! writes — every record type, 8 people and 4 flats, 448 of them monthly contributions
//! (which also keep the contribution index):
//!
//! - `apply_500`: versions higher than every stored one, on records the store already
//!   holds (the steady state); each iteration's events are encoded untimed;
//! - `replay_500`: the same batch again, at the stored versions (a batch redelivered after
//!   a crash): step one finds replays, step two is redone;
//! - `stale_500`: a batch older than what is stored: step one refuses every write.
//!
//! Redis runs only when `GOVLINK_BENCH_REDIS` names one; its keys go under a prefix of
//! this run's own, deleted when the group ends (also if a benchmark panics).

use std::cell::Cell;
use std::time::{Duration, Instant};

use criterion::{BenchmarkGroup, Criterion, SamplingMode, measurement::WallTime};
use govlink::proto::{self, RecordEvent, record_event::Payload};
use govlink::records::{Horizon, RecordKey, SubjectKey, Violations, subjects_of, validate_payload};
use govlink::redis_link::RedisLink;
use govlink::resolver::store::{ApplyOutcome, Change, MemoryStore, RecordWrite, RedisStore, Store};
use prost::Message as _;
use tokio::runtime::Runtime;

use crate::records::{self, PEOPLE, UNITS, person};

/// Writes per batch: the materializer's default `materializer_batch`.
const BATCH: usize = 500;

/// Monthly contribution records per person: 8 × 56 = 448, the rest of the batch.
const MONTHS: usize = 56;

/// The records of one batch, each with its key and subjects; [`Batch::encode`] gives
/// every event the version of an iteration.
struct Batch {
    records: Vec<(RecordKey, Vec<SubjectKey>, RecordEvent)>,
}

impl Batch {
    fn mixed() -> Batch {
        let people: Vec<String> = PEOPLE.iter().map(|p| person(p)).collect();
        let mut payloads: Vec<(String, Payload)> = Vec::with_capacity(BATCH);
        for (i, p) in people.iter().enumerate() {
            let pension = proto::InsuranceType::Pension as i32;
            payloads.extend([
                (format!("id-{i}"), Payload::Identity(records::identity(p))),
                (
                    format!("hukou-{i}"),
                    Payload::HouseholdRegistration(records::household(p, UNITS[i % 4])),
                ),
                (
                    format!("pension-{i}"),
                    Payload::Enrollment(records::enrollment(p, pension)),
                ),
                (
                    format!("zy-{i}"),
                    Payload::TransferOutCertificate(records::certificate(p)),
                ),
                (
                    format!("gjj-{i}"),
                    Payload::ProvidentFundAccount(records::account(p)),
                ),
            ]);
        }
        for (u, unit) in UNITS.iter().enumerate() {
            let (owner, co_owner) = (&people[2 * u], &people[2 * u + 1]);
            let buyer = &people[(2 * u + 2) % people.len()];
            payloads.extend([
                (
                    format!("title-{u}"),
                    Payload::PropertyTitle(records::title(unit, owner, co_owner)),
                ),
                (
                    format!("contract-{u}"),
                    Payload::SaleContract(records::contract(unit, &[owner, co_owner], buyer)),
                ),
                (
                    format!("loan-{u}"),
                    Payload::ProvidentFundLoan(records::loan(owner, unit)),
                ),
            ]);
        }
        for (i, p) in people.iter().enumerate() {
            for m in 0..MONTHS as i32 {
                let (year, month) = (2020 + m / 12, m % 12 + 1);
                payloads.push((
                    format!("contrib-{i}-{year}{month:02}"),
                    Payload::ContributionPeriod(records::contribution(p, year, month)),
                ));
            }
        }
        assert_eq!(payloads.len(), BATCH);
        let horizon = Horizon::now(Duration::from_secs(3600));
        let records = payloads
            .into_iter()
            .map(|(id, mut payload)| {
                let mut v = Violations::default();
                validate_payload(&mut payload, &id, &horizon, &mut v);
                assert!(v.is_empty(), "batch fixture {id} is invalid: {v}");
                let subjects = subjects_of(&payload);
                let (key, event) = records::envelope(records::meta(&id, 1), payload);
                (key, subjects, event)
            })
            .collect();
        Batch { records }
    }

    /// The events in stored form, every one at `version`.
    fn encode(&mut self, version: u64) -> Vec<Vec<u8>> {
        self.records
            .iter_mut()
            .map(|(_, _, event)| {
                event.version = version;
                govlink::records::stored::compact(&event.encode_to_vec()).expect("an event")
            })
            .collect()
    }

    /// The writes of the batch at `version`, borrowing `encoded` (from [`Batch::encode`]
    /// at the same version).
    fn writes<'a>(&self, encoded: &'a [Vec<u8>], version: u64) -> Vec<RecordWrite<'a>> {
        self.records
            .iter()
            .zip(encoded)
            .map(|((key, subjects, _), event)| RecordWrite {
                key: key.clone(),
                version,
                change: Change::Upsert {
                    subjects: subjects.clone(),
                    event: event.into(),
                },
            })
            .collect()
    }
}

/// Fails the run if a batch did not do what its benchmark claims to measure.
fn assert_outcome(outcome: ApplyOutcome, applied: usize, stale: usize) {
    assert_eq!(
        (outcome.applied, outcome.stale),
        (applied, stale),
        "applied and stale writes of the batch"
    );
}

/// A runtime for the stores' async calls, each run to completion with `block_on`.
fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// `store` once it holds the whole batch at `version`.
fn holding(store: Store, rt: &Runtime, batch: &mut Batch, version: u64) -> Store {
    let encoded = batch.encode(version);
    let outcome = rt.block_on(store.apply(&batch.writes(&encoded, version)));
    assert_outcome(outcome.expect("the batch is written"), BATCH, 0);
    store
}

/// The three benchmarks on stores made by `open` (one store each, made only if the
/// benchmark runs).
fn bench_store(group: &mut BenchmarkGroup<'_, WallTime>, rt: &Runtime, open: &dyn Fn() -> Store) {
    group.sampling_mode(SamplingMode::Flat).sample_size(30);
    let mut batch = Batch::mixed();

    let mut fresh: Option<(Store, u64)> = None;
    group.bench_function("apply_500", |b| {
        let (store, version) = fresh.get_or_insert_with(|| (holding(open(), rt, &mut batch, 1), 1));
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                *version += 1;
                let encoded = batch.encode(*version);
                let writes = batch.writes(&encoded, *version);
                let start = Instant::now();
                let outcome = rt.block_on(store.apply(&writes));
                timed += start.elapsed();
                assert_outcome(outcome.expect("the batch is written"), BATCH, 0);
            }
            timed
        });
    });

    // Both hold the batch at version 2: written again at 2 it is a replay, at 1 stale.
    for (name, version, applied) in [("replay_500", 2, BATCH), ("stale_500", 1, 0)] {
        let mut prepared: Option<(Store, Vec<Vec<u8>>)> = None;
        group.bench_function(name, |b| {
            let (store, encoded) = prepared
                .get_or_insert_with(|| (holding(open(), rt, &mut batch, 2), batch.encode(version)));
            let writes = batch.writes(encoded, version);
            b.iter(|| {
                let outcome = rt.block_on(store.apply(&writes));
                assert_outcome(
                    outcome.expect("the batch is written"),
                    applied,
                    BATCH - applied,
                );
            });
        });
    }
}

/// `store/memory/…`: the in-memory store of `dev` and `demo`.
pub(crate) fn memory(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("store/memory");
    bench_store(&mut group, &rt, &|| Store::Memory(MemoryStore::new()));
    group.finish();
}

/// `store/redis/…`: the Redis store, when `GOVLINK_BENCH_REDIS` names a Redis.
pub(crate) fn redis(c: &mut Criterion) {
    let Ok(url) = std::env::var("GOVLINK_BENCH_REDIS") else {
        eprintln!("store/redis: skipped (set GOVLINK_BENCH_REDIS to a Redis URL to run it)");
        return;
    };
    let rt = runtime();
    let keys = RedisKeys {
        url,
        prefix: format!(
            "govlink-bench:{}:",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        ),
        stores: Cell::new(0),
    };
    let mut group = c.benchmark_group("store/redis");
    bench_store(&mut group, &rt, &|| {
        let n = keys.stores.get() + 1;
        keys.stores.set(n);
        let prefix = format!("{}{n}:", keys.prefix);
        let store = rt.block_on(RedisStore::connect(
            &RedisLink::new(keys.url.as_str()),
            &prefix,
        ));
        Store::Redis(store.expect("GOVLINK_BENCH_REDIS names a reachable Redis"))
    });
    group.finish();
}

/// The keys of this run's Redis stores, deleted when dropped.
struct RedisKeys {
    url: String,
    /// Every store of the run keeps its keys under it.
    prefix: String,
    /// How many stores were opened: nothing to delete when none was.
    stores: Cell<u32>,
}

impl Drop for RedisKeys {
    fn drop(&mut self) {
        if self.stores.get() == 0 {
            return;
        }
        if let Err(e) = delete_prefix(&self.url, &self.prefix) {
            eprintln!(
                "store/redis: could not delete the keys under {}: {e}",
                self.prefix
            );
        }
    }
}

/// Deletes every key starting with `prefix` (which holds no glob characters).
fn delete_prefix(url: &str, prefix: &str) -> redis::RedisResult<()> {
    let mut conn = RedisLink::new(url).client()?.get_connection()?;
    let pattern = format!("{prefix}*");
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(500)
            .query(&mut conn)?;
        if !keys.is_empty() {
            redis::cmd("UNLINK").arg(&keys).query::<u64>(&mut conn)?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}
