//! `govlink rebuild`: rebuilds the record store from the topics on demand. It starts a
//! new generation of the store (see `resolver::store::Meta`), so running resolvers leave
//! the old one and join in; it materializes alongside them until the store has caught up,
//! reporting progress, then stops.

use std::time::Duration;

use tokio::task::{JoinError, JoinHandle};
use tokio::time::{Instant, sleep};
use tokio_util::sync::CancellationToken;

use crate::app::{AppError, Kafka, Role, materializer_config};
use crate::config::Settings;
use crate::kafka::Publisher;
use crate::resolver::store::{RedisStore, Store, StoreState};
use crate::resolver::{
    Materializer, MaterializerError, Positions, TimingsSnapshot, new_generation,
};

/// How often progress is read from the store.
const PROGRESS_EVERY: Duration = Duration::from_millis(50);

/// What a rebuild did.
#[derive(Debug, Clone)]
pub struct RebuildReport {
    /// The generation it built.
    pub generation: String,
    /// Events it covered (from offsets, so an estimate on topics with gaps).
    pub events: u64,
    /// Non-empty record partitions it read.
    pub partitions: usize,
    /// How long it took.
    pub elapsed: Duration,
    /// Where the materializer's time went.
    pub timings: TimingsSnapshot,
    /// How long it took to start materializing: connecting, checking the topics and
    /// clearing the store.
    pub preparing: Duration,
}

/// Rebuilds the Redis store of `settings` from the topics; `progress(done, total)` is
/// called as it goes (`total` is 0 while the store is being cleared).
pub async fn rebuild(
    settings: &Settings,
    mut progress: impl FnMut(u64, u64),
) -> Result<RebuildReport, AppError> {
    let started = Instant::now();
    let Prepared {
        kafka: _kafka,
        store,
        generation,
        publisher,
        materializer,
    } = prepare(settings).await?;
    let timings = materializer.timings();
    let preparing = started.elapsed();
    let stop = CancellationToken::new();
    let mut running = tokio::spawn(materializer.run(stop.child_token()));
    let outcome = loop {
        tokio::select! {
            ended = &mut running => break Err(materializer_ended(ended)),
            () = sleep(PROGRESS_EVERY) => {}
        }
        let Some(meta) = store.meta().await? else {
            continue;
        };
        if meta.generation != generation {
            break Err(AppError::Config(
                "another rebuild replaced this one; it carries on in the running resolvers".into(),
            ));
        }
        let (total, done) = meta.progress();
        progress(done, total);
        if meta.state == StoreState::Ready {
            break Ok(RebuildReport {
                generation: generation.clone(),
                events: total,
                partitions: meta.targets.len(),
                elapsed: started.elapsed(),
                timings: timings.snapshot(),
                preparing,
            });
        }
    };
    wind_down(settings, &stop, running, publisher).await;
    outcome
}

/// What a rebuild runs on, once prepared.
struct Prepared {
    /// The broker; kept until the rebuild ends (an embedded one stops when dropped).
    kafka: Kafka,
    /// The Redis store being rebuilt.
    store: Store,
    /// The generation this rebuild started.
    generation: String,
    /// Where the materializer sends dead letters.
    publisher: Publisher,
    /// The materializer of the new generation, not yet running.
    materializer: Materializer,
}

/// Connects to the broker and Redis, starts a new generation of the store (which clears
/// it), and sets up a materializer for it; fails if another rebuild started at the same
/// moment.
async fn prepare(settings: &Settings) -> Result<Prepared, AppError> {
    let Some(link) = settings.redis_link() else {
        return Err(AppError::Config(
            "no Redis configured: set --redis or GOVLINK_REDIS".into(),
        ));
    };
    let kafka = Kafka::connect(settings, Role::Resolver).await?;
    let store = Store::Redis(RedisStore::connect(&link, &settings.redis_prefix).await?);
    let config = materializer_config(settings, &kafka);
    let seen = store.meta().await?.map(|m| m.generation);
    let generation = new_generation();
    if !store
        .replace_generation(seen.as_deref(), &generation, &config.source)
        .await?
    {
        return Err(AppError::Config(
            "another rebuild started at the same moment; let it finish".into(),
        ));
    }
    tracing::info!(generation, "rebuild started");
    let publisher = Publisher::new(
        &kafka.brokers,
        settings.request_timeout().max(Duration::from_secs(1)) * 3,
        settings.max_in_flight,
    )?;
    let materializer = Materializer::new(
        config,
        store.clone(),
        kafka.topics.clone(),
        publisher.clone(),
        Positions::new(store.clone(), kafka.partitions.clone()),
        // The tool exposes no metrics: its progress is what it prints.
        crate::telemetry::Metrics::new(),
    );
    Ok(Prepared {
        kafka,
        store,
        generation,
        publisher,
        materializer,
    })
}

/// The error of a materializer that ended before the store was ready.
fn materializer_ended(ended: Result<Result<(), MaterializerError>, JoinError>) -> AppError {
    AppError::TaskFailed {
        task: "materializer",
        reason: match ended {
            Ok(Ok(())) => "ended on its own".into(),
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        },
    }
}

/// Stops the materializer (waiting for it up to the shutdown grace) and flushes its
/// dead-letter publishes.
async fn wind_down(
    settings: &Settings,
    stop: &CancellationToken,
    mut running: JoinHandle<Result<(), MaterializerError>>,
    publisher: Publisher,
) {
    stop.cancel();
    if !running.is_finished() {
        let _ = tokio::time::timeout(settings.shutdown_grace(), &mut running).await;
    }
    let flushed =
        tokio::task::spawn_blocking(move || publisher.flush(Duration::from_secs(5))).await;
    if !matches!(flushed, Ok(Ok(()))) {
        tracing::warn!("dead-letter publishes did not flush");
    }
}
