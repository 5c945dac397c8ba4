//! Server streams fed by polling the case store (`WatchCase`, `Tasks.Stream`): a source
//! is asked every [`EVERY`] for what is new; the stream ends when the source says it is
//! done or fails, the client goes away, or the server stops taking calls.
//!
//! The stream polls its source itself, as the server pulls items from it: no task is
//! spawned for it, so nothing outlives the call. When the client goes away the server
//! drops the stream, and the polling, the source and the stream's slot go with it; a
//! slow client is simply pulled from less often (the items of one poll wait in the
//! stream, as many as the source returned).

use std::collections::VecDeque;
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
    source: S,
    slot: StreamSlot,
    stop: CancellationToken,
    telemetry: Telemetry,
) -> Polled<S::Item> {
    let polling = Polling {
        source,
        ready: VecDeque::new(),
        polled: false,
        ended: false,
        stop,
        telemetry,
        _slot: slot,
    };
    Box::pin(futures::stream::unfold(polling, |mut polling| async move {
        let item = polling.next().await?;
        Some((item, polling))
    }))
}

/// A stream's state between the items it sends.
struct Polling<S: Source> {
    source: S,
    /// What the last poll found that is not sent yet.
    ready: VecDeque<S::Item>,
    /// Whether the source was asked yet (the first time at once, then every [`EVERY`]).
    polled: bool,
    /// The source said it is done, or failed: what is ready is the last.
    ended: bool,
    stop: CancellationToken,
    telemetry: Telemetry,
    /// Held as long as the stream is open.
    _slot: StreamSlot,
}

impl<S: Source> Polling<S> {
    /// The stream's next item; `None` once it ends.
    async fn next(&mut self) -> Option<Result<S::Item, Status>> {
        loop {
            if let Some(item) = self.ready.pop_front() {
                return Some(Ok(item));
            }
            if self.ended {
                return None;
            }
            if self.polled {
                tokio::select! {
                    () = self.stop.cancelled() => return None,
                    () = sleep(EVERY) => {}
                }
            }
            self.polled = true;
            match self.source.next().await {
                Ok((items, done)) => {
                    self.ready.extend(items);
                    self.ended = done;
                }
                Err(e) => {
                    self.ended = true;
                    return Some(Err(e.status(&self.telemetry)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures::StreamExt;

    use super::*;
    use crate::cases::admission::Admission;
    use crate::identity::Requester;
    use crate::limits::Rate;
    use crate::proto::Agency;
    use crate::telemetry::metrics::Metrics;

    /// Counts its polls; sends the poll's number, and is done after `last` (never with
    /// none) or fails at `fail`.
    struct Counting {
        polls: Arc<AtomicUsize>,
        last: Option<usize>,
        fail: Option<usize>,
    }

    impl Source for Counting {
        type Item = usize;

        async fn next(&mut self) -> Result<(Vec<usize>, bool), CaseError> {
            let poll = self.polls.fetch_add(1, Ordering::SeqCst) + 1;
            if self.fail == Some(poll) {
                return Err(CaseError::NotFound("gone"));
            }
            Ok((vec![poll], self.last == Some(poll)))
        }
    }

    fn open(
        admission: &Arc<Admission>,
        last: Option<usize>,
        fail: Option<usize>,
        stop: &CancellationToken,
    ) -> (Polled<usize>, Arc<AtomicUsize>) {
        let polls = Arc::new(AtomicUsize::new(0));
        let source = Counting {
            polls: Arc::clone(&polls),
            last,
            fail,
        };
        let slot = admission
            .stream(&Requester::new(Agency::Housing, "records"))
            .unwrap();
        let polled = stream(source, slot, stop.clone(), Metrics::new());
        (polled, polls)
    }

    fn open_streams(admission: &Admission) -> usize {
        admission.open_streams(&Requester::new(Agency::Housing, "records"))
    }

    #[tokio::test]
    async fn a_stream_sends_each_poll_until_its_source_is_done_or_fails() {
        let admission = Admission::new(Rate::new(0, 0));
        let stop = CancellationToken::new();
        let (done, _) = open(&admission, Some(3), None, &stop);
        let sent: Vec<_> = done.map(Result::unwrap).collect().await;
        assert_eq!(sent, [1, 2, 3]);
        let (failing, _) = open(&admission, None, Some(2), &stop);
        let sent: Vec<_> = failing.collect().await;
        assert_eq!(sent.len(), 2, "the failure is the last item");
        assert_eq!(sent[0].as_ref().unwrap(), &1);
        assert_eq!(sent[1].as_ref().unwrap_err().code(), tonic::Code::NotFound);
        assert_eq!(
            open_streams(&admission),
            0,
            "an ended stream frees its slot"
        );
    }

    #[tokio::test]
    async fn stop_ends_a_stream_between_polls() {
        let admission = Admission::new(Rate::new(0, 0));
        let stop = CancellationToken::new();
        let (mut open_stream, polls) = open(&admission, None, None, &stop);
        assert_eq!(open_stream.next().await.unwrap().unwrap(), 1);
        stop.cancel();
        assert!(open_stream.next().await.is_none(), "stopped");
        assert_eq!(polls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_stream_polls_only_while_it_is_open_and_runs_no_task_of_its_own() {
        let admission = Admission::new(Rate::new(0, 0));
        let stop = CancellationToken::new();
        let tasks = tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks();
        let (mut open_stream, polls) = open(&admission, None, None, &stop);
        assert_eq!(open_stream.next().await.unwrap().unwrap(), 1);
        assert_eq!(
            tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks(),
            tasks,
            "the stream's own future polls its source"
        );
        assert_eq!(open_streams(&admission), 1);
        // The client goes away: the server drops the stream.
        drop(open_stream);
        assert_eq!(open_streams(&admission), 0, "its slot is free at once");
        sleep(EVERY * 3).await;
        assert_eq!(polls.load(Ordering::SeqCst), 1, "nothing polls any more");
    }
}
