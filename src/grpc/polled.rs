//! Server streams fed by polling (`WatchCase`, `Tasks.Stream`, `WatchDataAccesses`): a
//! stream asks its source for what is new, at once and then after each wait (at once
//! again when the source says more is waiting), and ends when the source says it is done
//! or fails (the failure, as a status, is its last item), the client goes away, or the
//! server stops taking calls.
//!
//! The stream polls its source itself, as the server pulls items from it: no task is
//! spawned for it, so nothing outlives the call. When the client goes away the server
//! drops the stream, and the polling, the source and what the stream holds (its slot
//! among the open streams) go with it; a slow client is simply pulled from less often
//! (the items of one poll wait in the stream, as many as the source returned).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures::Stream;
use tokio::time::sleep;
use tokio_util::sync::CancellationToken;
use tonic::Status;

/// A server stream of `T`.
pub type Polled<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// What follows the items a source returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    /// Ask again after the stream's wait.
    Wait,
    /// Ask again at once: more is waiting.
    Again,
    /// Nothing more will come: the stream ends once these items are sent.
    Done,
}

/// What a polled stream sends.
pub trait Source: Send + 'static {
    type Item: Send + 'static;

    /// The items new since the last call and what follows them; a failure ends the
    /// stream as its last item.
    fn next(&mut self) -> impl Future<Output = Result<(Vec<Self::Item>, Then), Status>> + Send;
}

/// Streams what `source` yields, asking it every `every`, until it is done or fails, the
/// client goes or `stop`; `held` (the stream's slot) is kept as long as the stream is open.
pub fn stream<S: Source, H: Send + 'static>(
    source: S,
    every: Duration,
    held: H,
    stop: CancellationToken,
) -> Polled<S::Item> {
    let polling = Polling {
        source,
        every,
        ready: VecDeque::new(),
        wait: false,
        ended: false,
        stop,
        _held: held,
    };
    Box::pin(futures::stream::unfold(polling, |mut polling| async move {
        let item = polling.next().await?;
        Some((item, polling))
    }))
}

/// A stream's state between the items it sends.
struct Polling<S: Source, H> {
    source: S,
    every: Duration,
    /// What the last poll found that is not sent yet.
    ready: VecDeque<S::Item>,
    /// Whether to wait `every` before asking again.
    wait: bool,
    /// The source said it is done, or failed: what is ready is the last.
    ended: bool,
    stop: CancellationToken,
    /// Kept as long as the stream is open.
    _held: H,
}

impl<S: Source, H> Polling<S, H> {
    /// The stream's next item; `None` once it ends.
    async fn next(&mut self) -> Option<Result<S::Item, Status>> {
        loop {
            if let Some(item) = self.ready.pop_front() {
                return Some(Ok(item));
            }
            if self.ended || self.stop.is_cancelled() {
                return None;
            }
            if self.wait {
                tokio::select! {
                    () = self.stop.cancelled() => return None,
                    () = sleep(self.every) => {}
                }
            }
            let read = tokio::select! {
                () = self.stop.cancelled() => return None,
                read = self.source.next() => read,
            };
            match read {
                Ok((items, then)) => {
                    self.ready.extend(items);
                    self.ended = then == Then::Done;
                    self.wait = then == Then::Wait;
                }
                Err(status) => {
                    self.ended = true;
                    return Some(Err(status));
                }
            }
        }
    }
}
