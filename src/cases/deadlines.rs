//! Deadlines pass without anybody acting, so a clock asks: every so often each open case
//! gets a `CheckDeadlines` command, and the engine marks the open steps past their due
//! date overdue (once each: the escalation). Several engines each asking is harmless,
//! as every command is.

use std::time::{Duration, SystemTime};

use prost::Message as _;
use tokio::time::{Instant, sleep};
use tokio_util::sync::CancellationToken;

use super::store::CaseStore;
use crate::kafka::{Publisher, Topics};
use crate::proto::{self, CaseCommand, case_command};

/// How long a command may take to reach the broker.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends `CheckDeadlines` to every open case every `every`, until `stop`.
pub async fn run(
    cases: CaseStore,
    publisher: Publisher,
    topics: Topics,
    every: Duration,
    stop: CancellationToken,
) -> Result<(), String> {
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            () = sleep(every) => {}
        }
        let open = match cases.open_cases().await {
            Ok(open) => open,
            Err(e) => {
                tracing::warn!(error = %e, "open cases not listed; deadlines checked next time");
                continue;
            }
        };
        for case_id in open {
            let command = CaseCommand {
                command_id: uuid::Uuid::now_v7().to_string(),
                case_id: case_id.clone(),
                at: Some(SystemTime::now().into()),
                body: Some(case_command::Body::CheckDeadlines(
                    proto::CheckDeadlinesCommand {},
                )),
            };
            let sent = publisher
                .publish(
                    &topics.case_commands(),
                    case_id.as_bytes(),
                    &command.encode_to_vec(),
                    &[],
                    Instant::now() + SEND_TIMEOUT,
                )
                .await;
            if let Err(e) = sent {
                tracing::warn!(error = %e, case_id, "deadline check not sent");
            }
        }
    }
}
