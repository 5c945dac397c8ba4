//! What a requester may have of the case engine's services at once: calls per second
//! (the lookup rate, in a bucket of its own) and open server streams (`Tasks.Stream` and
//! `WatchCase` together). Shared by the `Cases` and `Tasks` services of a process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use super::error::CaseError;
use crate::grpc::admit_requester;
use crate::identity::Requester;
use crate::limits::{Rate, RateLimiter};
use crate::telemetry::metrics::Telemetry;
/// The most requesters whose call rate is tracked at once (as for lookups).
const MAX_REQUESTERS: usize = 10_000;

/// The most server streams one requester may have open on one process: an agency system
/// needs one task stream, a window a handful of case watches; each polls the case store.
pub const MAX_STREAMS_PER_REQUESTER: usize = 16;

/// Each requester's calls per second and open streams.
pub struct Admission {
    rate: RateLimiter<Requester>,
    streams: Mutex<HashMap<Requester, usize>>,
}

impl Admission {
    /// Calls at `rate` per requester, and [`MAX_STREAMS_PER_REQUESTER`] streams.
    pub fn new(rate: Rate) -> Arc<Admission> {
        Arc::new(Admission {
            rate: RateLimiter::new(rate, MAX_REQUESTERS),
            streams: Mutex::new(HashMap::new()),
        })
    }

    /// Takes one call of `calls` (e.g. "case call") from `requester`'s rate.
    pub(super) fn call(
        &self,
        requester: &Requester,
        telemetry: &Telemetry,
        calls: &str,
    ) -> Result<(), CaseError> {
        Ok(admit_requester(&self.rate, requester, telemetry, calls)?)
    }

    /// A slot for one more open stream of `requester`, given back when dropped;
    /// [`CaseError::TooManyStreams`] while it has [`MAX_STREAMS_PER_REQUESTER`] open.
    pub(super) fn stream(self: &Arc<Self>, requester: &Requester) -> Result<StreamSlot, CaseError> {
        let mut open = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(requester.clone()).or_insert(0);
        if *count >= MAX_STREAMS_PER_REQUESTER {
            return Err(CaseError::TooManyStreams(requester.clone()));
        }
        *count += 1;
        Ok(StreamSlot {
            admission: Arc::clone(self),
            requester: requester.clone(),
        })
    }

    /// How many streams `requester` has open.
    #[cfg(test)]
    pub(super) fn open_streams(&self, requester: &Requester) -> usize {
        let open = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(requester).copied().unwrap_or(0)
    }
}

/// One open stream of a requester; its slot is free again once this drops (the stream
/// ended, or its client went away).
pub(super) struct StreamSlot {
    admission: Arc<Admission>,
    requester: Requester,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self
            .admission
            .streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.requester) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.requester);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Agency;

    #[test]
    fn a_requester_has_at_most_the_streams_it_may_and_a_closed_one_frees_its_slot() {
        let admission = Admission::new(Rate::new(0, 0));
        let desk = Requester::new(Agency::Housing, "registry");
        let other = Requester::new(Agency::Housing, "transfer-window");
        let mut open: Vec<StreamSlot> = (0..MAX_STREAMS_PER_REQUESTER)
            .map(|_| admission.stream(&desk).expect("within the bound"))
            .collect();
        let refused = admission.stream(&desk).err().expect("one too many");
        let refused = refused.status(&crate::telemetry::metrics::Metrics::new());
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert_eq!(
            refused.message(),
            format!(
                "requester housing/registry has {MAX_STREAMS_PER_REQUESTER} streams open on \
                 this server, the most it may: close one first"
            )
        );
        assert!(admission.stream(&other).is_ok(), "each requester its own");
        open.pop();
        assert!(
            admission.stream(&desk).is_ok(),
            "a closed stream frees its slot"
        );
        drop(open);
        assert!(
            admission.streams.lock().unwrap().is_empty(),
            "every slot is given back"
        );
    }
}
