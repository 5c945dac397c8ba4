//! Records complete steps: the materializer's applied changes become `RecordChanged`
//! commands for the open cases whose plans read the changed subjects. The engine then
//! evaluates the case against the records as stored, so a change that proves nothing
//! changes nothing, and one delivered twice is harmless.

use std::time::Duration;

use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::commands::Commands;
use super::store::CaseStore;
use crate::kafka::{Publisher, Topics};
use crate::proto::{self, case_command};
use crate::resolver::AppliedChange;

/// How long a command may take to reach the broker.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends record changes to the cases they concern.
pub struct RecordBridge {
    changes: broadcast::Receiver<AppliedChange>,
    cases: CaseStore,
    commands: Commands,
}

impl RecordBridge {
    /// A bridge from `changes` (the materializer's) to the command topic.
    pub fn new(
        changes: broadcast::Receiver<AppliedChange>,
        cases: CaseStore,
        publisher: Publisher,
        topics: Topics,
    ) -> RecordBridge {
        RecordBridge {
            changes,
            cases,
            commands: Commands { publisher, topics },
        }
    }

    /// Runs until `stop`.
    pub async fn run(mut self, stop: CancellationToken) -> Result<(), String> {
        loop {
            let change = tokio::select! {
                () = stop.cancelled() => return Ok(()),
                change = self.changes.recv() => change,
            };
            let (cases, key, version) = match change {
                Ok(change) => {
                    let mut cases = Vec::new();
                    for subject in &change.subjects {
                        cases.extend(self.watching(subject.as_str()).await);
                    }
                    (cases, change.key.to_string(), change.version)
                }
                // Changes were missed: every open case looks at its records again.
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(
                        missed,
                        "record changes missed; re-evaluating every open case"
                    );
                    let cases = self.cases.open_cases().await.unwrap_or_else(|e| {
                        tracing::error!(error = %e, "open cases not listed");
                        Vec::new()
                    });
                    (cases, String::new(), 0)
                }
                Err(RecvError::Closed) => return Err("the materializer's changes ended".into()),
            };
            for case_id in dedup(cases) {
                self.send(&case_id, &key, version).await;
            }
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
