//! Putting a command on the command topic, keyed by its case, and waiting until the
//! engine applied it: what the services, the record bridge and the deadline clock share.

use std::time::{Duration, SystemTime};

use prost::Message as _;
use tokio::time::{Instant, sleep};

use super::error::CaseError;
use super::store::CaseStore;
use crate::kafka::{PublishError, Publisher, Topics};
use crate::proto::{Case, CaseCommand, case_command};

/// How often a call waiting for the engine looks at the case.
const POLL: Duration = Duration::from_millis(20);

/// Where commands go.
#[derive(Clone)]
pub(crate) struct Commands {
    pub(crate) publisher: Publisher,
    pub(crate) topics: Topics,
}

impl Commands {
    /// Sends `body` to case `case_id`, as of now, acknowledged by the broker by `until`.
    pub(crate) async fn send(
        &self,
        case_id: &str,
        body: case_command::Body,
        until: Instant,
    ) -> Result<(), PublishError> {
        let command = CaseCommand {
            command_id: uuid::Uuid::now_v7().to_string(),
            case_id: case_id.to_owned(),
            at: Some(SystemTime::now().into()),
            body: Some(body),
        };
        self.publisher
            .publish(
                &self.topics.case_commands(),
                case_id.as_bytes(),
                &command.encode_to_vec(),
                &[],
                until,
            )
            .await
            .map(|_| ())
    }
}

/// What `look` finds in case `case_id` once the engine applied what the caller waits
/// for; [`CaseError::NotApplied`] at `until`.
pub(crate) async fn applied<T>(
    cases: &CaseStore,
    case_id: &str,
    until: Instant,
    look: impl Fn(Case) -> Option<T>,
) -> Result<T, CaseError> {
    loop {
        let stored = cases.load(case_id).await.map_err(CaseError::Store)?;
        if let Some(found) = stored.case.and_then(&look) {
            return Ok(found);
        }
        if Instant::now() + POLL > until {
            return Err(CaseError::NotApplied);
        }
        sleep(POLL).await;
    }
}
