//! The case store's server streams (`WatchCase`, `Tasks.Stream`) on the shared polled
//! stream ([`crate::grpc::polled`]): a source is asked every [`EVERY`] for what is new,
//! and a failure is answered and counted as every case failure is.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tonic::Status;

use super::admission::StreamSlot;
use super::error::CaseError;
use crate::grpc::polled::{self, Then};
use crate::telemetry::metrics::Telemetry;

pub(super) use crate::grpc::polled::Polled;

/// How often a source is asked.
const EVERY: Duration = Duration::from_millis(200);

/// What a case stream sends.
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
    polled::stream(Counted { source, telemetry }, EVERY, slot, stop)
}

/// A case source whose failures become statuses, counted.
struct Counted<S> {
    source: S,
    telemetry: Telemetry,
}

impl<S: Source> polled::Source for Counted<S> {
    type Item = S::Item;

    async fn next(&mut self) -> Result<(Vec<S::Item>, Then), Status> {
        match self.source.next().await {
            Ok((items, true)) => Ok((items, Then::Done)),
            Ok((items, false)) => Ok((items, Then::Wait)),
            Err(e) => Err(e.status(&self.telemetry)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures::StreamExt;

    use tokio::time::sleep;

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
