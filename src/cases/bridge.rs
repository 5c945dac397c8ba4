//! Records complete steps: the materializer's applied changes become `RecordChanged`
//! commands for the open cases whose plans read the changed subjects. The engine then
//! evaluates the case against the records as stored, so a change that proves nothing
//! changes nothing, and one delivered twice is harmless.

use std::time::Duration;

use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::commands::Commands;
use super::store::CaseStore;
use crate::kafka::{Publisher, Topics};
use crate::proto::{self, case_command};
use crate::resolver::AppliedChange;

/// Why the bridge stops: the materializer it follows went away.
const CLOSED: &str = "the materializer's changes ended";

/// How long a command may take to reach the broker.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends record changes to the cases they concern.
pub struct RecordBridge {
    changes: broadcast::Receiver<AppliedChange>,
    /// Whether the record store is ready (caught up), as the materializer sees it.
    ready: watch::Receiver<bool>,
    cases: CaseStore,
    commands: Commands,
}

impl RecordBridge {
    /// A bridge from `changes` (the materializer's, with its readiness) to the command
    /// topic.
    pub fn new(
        changes: broadcast::Receiver<AppliedChange>,
        ready: watch::Receiver<bool>,
        cases: CaseStore,
        publisher: Publisher,
        topics: Topics,
    ) -> RecordBridge {
        RecordBridge {
            changes,
            ready,
            cases,
            commands: Commands { publisher, topics },
        }
    }

    /// Runs until `stop`.
    ///
    /// While the record store is not ready (at start, or rebuilt from the topics), the
    /// changes are the topics' history replayed into it, news to no case: they are let
    /// go, and once the store is ready every open case looks at its records again, once.
    /// The same when changes were missed (the bridge fell behind the materializer).
    pub async fn run(mut self, stop: CancellationToken) -> Result<(), String> {
        loop {
            if !*self.ready.borrow_and_update() {
                let let_go = tokio::select! {
                    () = stop.cancelled() => return Ok(()),
                    let_go = self.until_ready() => let_go?,
                };
                tracing::info!(
                    let_go,
                    "record store ready: every open case looks at its records again"
                );
                self.everyone().await;
                continue;
            }
            let change = tokio::select! {
                () = stop.cancelled() => return Ok(()),
                change = self.changes.recv() => change,
                // Readiness changed: looked at above.
                changed = self.ready.changed() => {
                    changed.map_err(|_| CLOSED.to_owned())?;
                    continue;
                }
            };
            match change {
                Ok(change) => {
                    let mut cases = Vec::new();
                    for subject in &change.subjects {
                        cases.extend(self.watching(subject.as_str()).await);
                    }
                    for case_id in dedup(cases) {
                        self.send(&case_id, change.key.as_str(), change.version)
                            .await;
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    let missed = missed + self.let_go()?;
                    tracing::warn!(
                        missed,
                        "record changes missed; every open case looks at its records again"
                    );
                    self.everyone().await;
                }
                Err(RecvError::Closed) => return Err(CLOSED.into()),
            }
        }
    }

    /// Lets changes go until the store is ready; how many it let go.
    async fn until_ready(&mut self) -> Result<u64, String> {
        let mut let_go = 0;
        loop {
            tokio::select! {
                changed = self.ready.changed() => {
                    changed.map_err(|_| CLOSED.to_owned())?;
                    if *self.ready.borrow_and_update() {
                        return Ok(let_go + self.let_go()?);
                    }
                }
                change = self.changes.recv() => match change {
                    Ok(_) => let_go += 1,
                    Err(RecvError::Lagged(missed)) => let_go += missed,
                    Err(RecvError::Closed) => return Err(CLOSED.into()),
                },
            }
        }
    }

    /// Lets go of every change waiting; how many.
    fn let_go(&mut self) -> Result<u64, String> {
        let mut let_go = 0;
        loop {
            match self.changes.try_recv() {
                Ok(_) => let_go += 1,
                Err(TryRecvError::Lagged(missed)) => let_go += missed,
                Err(TryRecvError::Empty) => return Ok(let_go),
                Err(TryRecvError::Closed) => return Err(CLOSED.into()),
            }
        }
    }

    /// Every open case looks at its records again.
    async fn everyone(&self) {
        let cases = self.cases.open_cases().await.unwrap_or_else(|e| {
            tracing::error!(error = %e, "open cases not listed");
            Vec::new()
        });
        for case_id in cases {
            self.send(&case_id, "", 0).await;
        }
    }

    async fn watching(&self, subject: &str) -> Vec<String> {
        self.cases.watching(subject).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cases of a subject not read");
            Vec::new()
        })
    }

    async fn send(&self, case_id: &str, record_key: &str, version: u64) {
        let body = case_command::Body::RecordChanged(proto::RecordChangedCommand {
            record_key: record_key.to_owned(),
            version,
        });
        let until = Instant::now() + SEND_TIMEOUT;
        if let Err(e) = self.commands.send(case_id, body, until).await {
            // The case catches up with the next change or deadline check of its records.
            tracing::warn!(error = %e, case_id, "record change not sent to its case");
        }
    }
}

fn dedup(mut ids: Vec<String>) -> Vec<String> {
    ids.sort_unstable();
    ids.dedup();
    ids
}
