//! Bringing the case lists of a store an older govlink wrote up to this code's layout:
//! `ListCases` reads a person's cases, a work list, a kind or a state from lists that
//! layout 1 did not keep. Until every case is listed there, `ListCases` reads the list
//! of every case (as layout 1 did: bounded, and honest about it), never an empty list
//! it has not filled yet. Every engine does this at start; it is idempotent, and a
//! no-op once the store's marker says the lists are current.

use std::time::Duration;

use tokio::time::sleep;
use tokio_util::sync::CancellationToken;

use super::store::CaseStore;

/// The first wait before trying again after the store failed.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Lists every case in this code's layout (retrying while the store fails), then waits
/// for `stop`.
pub async fn run(cases: CaseStore, stop: CancellationToken) -> Result<(), String> {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let relisted = tokio::select! {
            () = stop.cancelled() => return Ok(()),
            relisted = cases.relist() => relisted,
        };
        match relisted {
            Ok(0) => break,
            Ok(cases) => {
                tracing::info!(cases, "case lists brought to the current layout");
                break;
            }
            Err(e) => {
                tracing::warn!(error = %e, "case lists not brought to the current layout yet; retrying");
            }
        }
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            () = sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    stop.cancelled().await;
    Ok(())
}
