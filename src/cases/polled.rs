//! Server streams fed by polling the case store (`WatchCase`, `Tasks.Stream`): a source
//! is asked every [`EVERY`] for what is new; the stream ends when the source says it is
//! done or fails, the client goes away, or the server stops taking calls.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures::Stream;
use tokio::time::sleep;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use super::admission::StreamSlot;
use super::error::CaseError;
use crate::telemetry::metrics::Telemetry;

/// How often a source is asked.
const EVERY: Duration = Duration::from_millis(200);
/// Items a stream may have queued for a slow reader.
const BUFFER: usize = 64;

/// A server stream of `T`.
pub(super) type Polled<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// What a polled stream sends.
pub(super) trait Source: Send + 'static {
    type Item: Send + 'static;

    /// The items new since the last call, and whether nothing more will come.
    fn next(&mut self) -> impl Future<Output = Result<(Vec<Self::Item>, bool), CaseError>> + Send;
}

/// Streams what `source` yields until it is done, fails (its failure, counted in
/// `telemetry`, is the stream's last item), the client goes or `stop`; `slot` is held as
/// long as the stream is open.
pub(super) fn stream<S: Source>(
    mut source: S,
    slot: StreamSlot,
    stop: CancellationToken,
    telemetry: Telemetry,
) -> Polled<S::Item> {
    let (tx, rx) = tokio::sync::mpsc::channel(BUFFER);
    tokio::spawn(async move {
        let _slot = slot;
        loop {
            let (items, done) = match source.next().await {
                Ok(next) => next,
                Err(e) => {
                    let _ = tx.send(Err(e.status(&telemetry))).await;
                    return;
                }
            };
            for item in items {
                if tx.send(Ok(item)).await.is_err() {
                    return;
                }
            }
            if done {
                return;
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tx.closed() => return,
                () = sleep(EVERY) => {}
            }
        }
    });
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}
