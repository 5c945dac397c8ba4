//! What the admin server shows, sampled every few seconds: the metrics as exposed, the
//! topics' end offsets, the readiness checks, and the gauges that are counted rather than
//! observed (producer window, materializer lag, open cases and steps). Rates are the
//! difference between the last two samples.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cases::store::CaseStore;
use crate::kafka::{Brokers, Publisher, client_config};
use crate::proto::{CaseKind, CaseState, StepState};
use crate::records::agency_slug;
use crate::resolver::store::{Meta, Store, StoreState};
use crate::telemetry::events::kind_name;
use crate::telemetry::metrics::{AgencyLabel, KindLabel, Telemetry, TopicPartition};

/// How often a sample is taken.
pub const EVERY: Duration = Duration::from_secs(5);
/// Case gauges read every case view: only every this many samples.
const CASES_EVERY: u64 = 6;
/// How long each readiness check may take: the broker and its topics, Redis, the record
/// store's positions. They run side by side, so `/readyz` answers within about this
/// long whatever is down — well within the probes' `timeoutSeconds` (deploy/k8s; the
/// deployment tests hold them above it).
pub const READY_CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// A broker client for the admin server's samples and checks.
pub fn broker_client(brokers: &Brokers) -> Result<BaseConsumer, rdkafka::error::KafkaError> {
    client_config(brokers, "govlink-admin").create()
}

/// The series of one exposition, by name and labels as exposed (`name{a="b"}`).
#[derive(Debug, Clone, Default)]
pub struct Series(HashMap<String, f64>);

impl Series {
    /// Parses the Prometheus text exposition.
    pub fn parse(text: &str) -> Series {
        let values = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (series, value) = l.rsplit_once(' ')?;
                Some((series.to_owned(), value.parse().ok()?))
            })
            .collect();
        Series(values)
    }

    /// The sum of every series of `name` whose labels contain each of `labels`
    /// (`key="value"`).
    pub fn sum(&self, name: &str, labels: &[&str]) -> f64 {
        self.0
            .iter()
            .filter(|(series, _)| {
                let (n, rest) = series.split_once('{').unwrap_or((series.as_str(), ""));
                n == name && labels.iter().all(|l| rest.contains(l))
            })
            // From 0, not from the -0 an empty f64 sum gives.
            .fold(0.0, |sum, (_, v)| sum + v)
    }

    /// Every value the label `key` takes in series of `name`.
    pub fn label_values(&self, name: &str, key: &str) -> Vec<String> {
        let prefix = format!("{key}=\"");
        let mut values: Vec<String> = self
            .0
            .keys()
            .filter(|s| s.starts_with(&format!("{name}{{")))
            .filter_map(|s| {
                let start = s.find(&prefix)? + prefix.len();
                Some(s[start..].split('"').next()?.to_owned())
            })
            .collect();
        values.sort();
        values.dedup();
        values
    }
}

/// One sample.
#[derive(Debug, Clone)]
pub struct Sample {
    pub at: Instant,
    pub series: Series,
    /// Topic → messages in it (the sum of its partitions' end offsets).
    pub ends: BTreeMap<String, i64>,
    /// Record topic → events not yet materialized.
    pub lag: BTreeMap<String, i64>,
    /// Each readiness check: its name and `Err` with what is wrong.
    pub checks: Vec<(&'static str, Result<(), String>)>,
}

impl Sample {
    /// Whether every check passed.
    pub fn ready(&self) -> bool {
        self.checks.iter().all(|(_, r)| r.is_ok())
    }
}

/// The last two samples.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    pub latest: Option<Sample>,
    pub previous: Option<Sample>,
}

impl Samples {
    /// Per second, how fast `value` grew between the last two samples (0 with fewer).
    pub fn rate(&self, value: impl Fn(&Sample) -> f64) -> f64 {
        match (&self.previous, &self.latest) {
            (Some(a), Some(b)) if b.at > a.at => {
                ((value(b) - value(a)) / (b.at - a.at).as_secs_f64()).max(0.0)
            }
            _ => 0.0,
        }
    }
}

/// Where the samples come from: what a process has of the broker, the stores and its
/// materializer.
#[derive(Clone)]
pub struct Sources {
    pub telemetry: Telemetry,
    /// A client of the broker, kept for every sample and check.
    pub broker: Arc<BaseConsumer>,
    /// Every topic the process needs.
    pub topics: Vec<String>,
    /// The record topics among them.
    pub record_topics: Vec<String>,
    pub publisher: Publisher,
    /// The record store (roles with a materializer).
    pub store: Option<Store>,
    /// Whether the record store is caught up, as the materializer sees it.
    pub materialized: Option<watch::Receiver<bool>>,
    /// Where Redis is, when the process uses Redis.
    pub redis: Option<crate::redis_link::RedisLink>,
    /// The case store (roles with a case engine).
    pub cases: Option<CaseStore>,
    /// The most events the record store may be behind the topics and be ready.
    pub max_lag: i64,
}

/// Every partition's end offset, by topic and partition; or why they could not be read.
pub type Watermarks = Result<BTreeMap<(String, i32), i64>, String>;

/// Events not yet materialized per record topic; or why that cannot be told.
pub type Lag = Result<BTreeMap<String, i64>, String>;

/// What one round of readiness checks read, side by side, each within
/// [`READY_CHECK_TIMEOUT`].
struct Reading {
    watermarks: Watermarks,
    /// The record store's marker and positions (roles with a record store).
    meta: Option<Result<Option<Meta>, String>>,
    /// Whether Redis answered `PING` (roles that use Redis).
    redis: Option<Result<(), String>>,
}

/// The shared latest samples.
pub type Shared = Arc<RwLock<Samples>>;

impl Sources {
    /// Samples every [`EVERY`] into `shared` until `stop`.
    pub async fn run(self, shared: Shared, stop: CancellationToken) -> Result<(), String> {
        let mut tick = 0u64;
        loop {
            let sample = self.sample(tick.is_multiple_of(CASES_EVERY)).await;
            {
                let mut samples = shared.write().unwrap_or_else(|e| e.into_inner());
                samples.previous = samples.latest.replace(sample);
            }
            tick += 1;
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                () = tokio::time::sleep(EVERY) => {}
            }
        }
    }

    /// Takes one sample; with `cases`, recounts the case gauges too.
    pub async fn sample(&self, cases: bool) -> Sample {
        let t = &self.telemetry;
        t.producer_in_flight.set(self.publisher.in_flight() as i64);
        t.producer_queue_depth.set(self.publisher.queued() as i64);
        let reading = self.read().await;
        let mut ends = BTreeMap::<String, i64>::new();
        for ((topic, _), end) in reading.watermarks.iter().flatten() {
            *ends.entry(topic.clone()).or_default() += end;
        }
        let lag = self.lag(&reading);
        if cases {
            self.count_cases().await;
        }
        let checks = self.judge(&reading, &lag);
        Sample {
            at: Instant::now(),
            series: Series::parse(&t.encode()),
            ends,
            lag: lag.unwrap_or_default(),
            checks,
        }
    }

    /// The broker's end offsets, the record store's positions and Redis's `PING`, side
    /// by side, each given up after [`READY_CHECK_TIMEOUT`].
    async fn read(&self) -> Reading {
        let meta = async {
            let store = self.store.as_ref()?;
            Some(
                match tokio::time::timeout(READY_CHECK_TIMEOUT, store.meta()).await {
                    Ok(meta) => meta.map_err(|e| e.to_string()),
                    Err(_) => Err(format!("no answer within {READY_CHECK_TIMEOUT:?}")),
                },
            )
        };
        let redis = async { Some(ping(self.redis.as_ref()?).await) };
        let (watermarks, meta, redis) = tokio::join!(self.watermarks(), meta, redis);
        Reading {
            watermarks,
            meta,
            redis,
        }
    }

    /// Every partition's end offset of every topic; `Err` when the broker cannot be
    /// reached, a topic is missing, or the answers took longer than
    /// [`READY_CHECK_TIMEOUT`] in all.
    async fn watermarks(&self) -> Watermarks {
        let (consumer, topics) = (Arc::clone(&self.broker), self.topics.clone());
        // One deadline for every request, so the blocking thread itself ends in time.
        let deadline = std::time::Instant::now() + READY_CHECK_TIMEOUT;
        let left = move || {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                Err(format!("no answer within {READY_CHECK_TIMEOUT:?}"))
            } else {
                Ok(left)
            }
        };
        let read = tokio::task::spawn_blocking(move || {
            let metadata = consumer
                .fetch_metadata(None, left()?)
                .map_err(|e| format!("broker unreachable: {e}"))?;
            let mut ends = BTreeMap::new();
            for name in &topics {
                let topic = metadata
                    .topics()
                    .iter()
                    .find(|t| t.name() == name && !t.partitions().is_empty())
                    .ok_or_else(|| format!("topic {name} is missing"))?;
                for p in topic.partitions() {
                    let (_, high) = consumer
                        .fetch_watermarks(name, p.id(), left()?)
                        .map_err(|e| format!("{name}/{}: {e}", p.id()))?;
                    ends.insert((name.clone(), p.id()), high);
                }
            }
            Ok(ends)
        });
        read.await.map_err(|e| e.to_string())?
    }

    /// Events not yet materialized per record topic (and as gauges per partition).
    fn lag(&self, reading: &Reading) -> Lag {
        let (Some(meta), Ok(watermarks)) = (&reading.meta, &reading.watermarks) else {
            return Ok(BTreeMap::new());
        };
        let meta = match meta {
            Ok(Some(meta)) => meta,
            Ok(None) => return Err("the store has no generation marker".into()),
            Err(e) => return Err(format!("the store's positions cannot be read: {e}")),
        };
        let mut lag = BTreeMap::new();
        for ((topic, partition), end) in watermarks {
            let field = crate::resolver::store::position_field(topic, *partition);
            if !self.is_record_topic(topic) {
                continue;
            }
            let reached = meta.positions.get(&field).copied().unwrap_or(-1);
            // A broker may report an end short of the last event: never below zero.
            let behind = (end - 1 - reached).max(0);
            self.telemetry
                .materializer_lag
                .get_or_create(&TopicPartition {
                    topic: topic.clone(),
                    partition: *partition,
                })
                .set(behind);
            *lag.entry(topic.clone()).or_default() += behind;
        }
        Ok(lag)
    }

    fn is_record_topic(&self, topic: &str) -> bool {
        self.record_topics.iter().any(|t| t == topic)
    }

    /// Open cases by kind, open and overdue steps by agency.
    async fn count_cases(&self) {
        let Some(cases) = &self.cases else { return };
        let Ok(ids) = cases.open_cases().await else {
            return;
        };
        let (mut open, mut steps, mut overdue) = (
            BTreeMap::<&'static str, i64>::new(),
            BTreeMap::<&'static str, i64>::new(),
            BTreeMap::<&'static str, i64>::new(),
        );
        for id in ids {
            let Ok(stored) = cases.load(&id).await else {
                continue;
            };
            let Some(case) = stored.case else { continue };
            if matches!(case.state(), CaseState::Completed | CaseState::Cancelled) {
                continue;
            }
            *open.entry(kind_name(case.kind())).or_default() += 1;
            for s in &case.steps {
                if matches!(s.state(), StepState::Open | StepState::Rejected) {
                    let agency = agency_slug(s.agency());
                    *steps.entry(agency).or_default() += 1;
                    if s.overdue {
                        *overdue.entry(agency).or_default() += 1;
                    }
                }
            }
        }
        let t = &self.telemetry;
        for kind in [
            CaseKind::PropertyTransfer,
            CaseKind::SocialSecurityTransfer,
            CaseKind::ProvidentFundTransfer,
            CaseKind::HouseholdMove,
            CaseKind::ProvidentFundLoan,
        ] {
            let kind = kind_name(kind);
            let n = open.get(kind).copied().unwrap_or(0);
            t.cases_open.get_or_create(&KindLabel { kind }).set(n);
        }
        for agency in crate::records::AGENCIES.map(agency_slug) {
            let label = AgencyLabel { agency };
            let (n, late) = (
                steps.get(agency).copied().unwrap_or(0),
                overdue.get(agency).copied().unwrap_or(0),
            );
            t.steps_open.get_or_create(&label).set(n);
            t.steps_overdue.get_or_create(&label).set(late);
        }
    }

    /// The readiness checks, read now: the broker and the topics, Redis, and the record
    /// store caught up (not being rebuilt, at most `ready_max_lag_events` behind the
    /// topics). Within about [`READY_CHECK_TIMEOUT`], whatever is down.
    pub async fn checks(&self) -> Vec<(&'static str, Result<(), String>)> {
        let reading = self.read().await;
        let lag = self.lag(&reading);
        self.judge(&reading, &lag)
    }

    /// The readiness checks of what `reading` found.
    fn judge(&self, reading: &Reading, lag: &Lag) -> Vec<(&'static str, Result<(), String>)> {
        let mut checks = Vec::new();
        checks.push((
            "broker and topics",
            reading
                .watermarks
                .as_ref()
                .map(|_| ())
                .map_err(Clone::clone),
        ));
        if let Some(redis) = &reading.redis {
            checks.push(("redis", redis.clone()));
        }
        if let Some(ready) = &self.materialized {
            let caught_up = if *ready.borrow() {
                match lag {
                    Ok(lag) if lag.values().sum::<i64>() <= self.max_lag => Ok(()),
                    Ok(lag) => Err(format!(
                        "{} events behind the topics (ready_max_lag_events is {})",
                        lag.values().sum::<i64>(),
                        self.max_lag
                    )),
                    Err(why) => Err(format!("cannot tell how far it is: {why}")),
                }
            } else {
                let state = match &reading.meta {
                    Some(Ok(Some(meta))) if meta.state != StoreState::Ready => {
                        let (total, done) = meta.progress();
                        format!("rebuilding: {done} of {total} events materialized")
                    }
                    _ => "not caught up with the topics yet".to_owned(),
                };
                Err(state)
            };
            checks.push(("record store caught up", caught_up));
        }
        checks
    }
}

/// Whether Redis at `link` answers a PING within [`READY_CHECK_TIMEOUT`].
async fn ping(link: &crate::redis_link::RedisLink) -> Result<(), String> {
    let attempt = async {
        let mut conn = link.connect().await.map_err(|e| e.to_string())?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    match tokio::time::timeout(READY_CHECK_TIMEOUT, attempt).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {READY_CHECK_TIMEOUT:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_summed_over_matching_labels() {
        let text = "# HELP x\n# TYPE govlink_publishes counter\n\
            govlink_publishes_total{agency=\"housing\",outcome=\"ok\"} 3\n\
            govlink_publishes_total{agency=\"housing\",outcome=\"unavailable\"} 1\n\
            govlink_publishes_total{agency=\"public-security\",outcome=\"ok\"} 5\n\
            govlink_producer_in_flight 7\n";
        let s = Series::parse(text);
        assert_eq!(s.sum("govlink_publishes_total", &[]), 9.0);
        assert_eq!(s.sum("govlink_publishes_total", &["outcome=\"ok\""]), 8.0);
        assert_eq!(
            s.sum(
                "govlink_publishes_total",
                &["agency=\"housing\"", "outcome=\"ok\""]
            ),
            3.0
        );
        assert_eq!(s.sum("govlink_producer_in_flight", &[]), 7.0);
        assert_eq!(
            s.label_values("govlink_publishes_total", "agency"),
            ["housing", "public-security"]
        );
    }
}
