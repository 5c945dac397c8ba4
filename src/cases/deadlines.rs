//! Deadlines pass without anybody acting, so a clock asks: every so often each open case
//! gets a `CheckDeadlines` command, and the engine marks the open steps past their due
//! date overdue (once each: the escalation). Several engines each asking is harmless,
//! as every command is.

use std::time::Duration;

use tokio::time::{Instant, sleep};
use tokio_util::sync::CancellationToken;

use super::commands::Commands;
use super::store::CaseStore;
use crate::kafka::{Publisher, Topics};
use crate::proto::{self, case_command};

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
        let commands = Commands {
            publisher: publisher.clone(),
            topics: topics.clone(),
        };
        for case_id in open {
            let body = case_command::Body::CheckDeadlines(proto::CheckDeadlinesCommand {});
            let until = Instant::now() + SEND_TIMEOUT;
            if let Err(e) = commands.send(&case_id, body, until).await {
                tracing::warn!(error = %e, case_id, "deadline check not sent");
            }
        }
    }
}
