//! The open `WatchDataAccesses` streams of a resolver process: how many may be open (in
//! all, and per watched person), and the stream each one is, polling the access index.
//!
//! The citizen portal is one requester acting for many citizens, so the bound is per
//! process and per person rather than per requester. A stream is the shared polled stream
//! ([`crate::grpc::polled`]) over its watch, as the case streams are: it reads the index
//! at once, then every [`EVERY`] (at once again while reads come back full). It holds at
//! most one read's notices. It ends when the server stops taking calls, when the client
//! goes away (the server drops it, and its slot with it), or with `UNAVAILABLE` when the
//! index fails (a Redis failure counted as every other), so the portal reconnects from
//! its last cursor rather than waiting on a stream that stalled.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tonic::Status;

use super::query::{QueryError, Watch};
use crate::domain::ResidentId;
use crate::grpc::polled::{self, Polled, Then};
use crate::proto::{Agency, DataAccessNotice};
use crate::telemetry::metrics::Telemetry;

/// How often an open watch reads the access index: a citizen is told within about this
/// long of the access being indexed; a thousand watches make two reads a millisecond.
pub const EVERY: Duration = Duration::from_millis(500);
/// The most watches one resolver process keeps open.
pub const MAX_WATCHES: usize = 1000;
/// The most watches of one person's accesses one resolver process keeps open (a citizen
/// with the portal open on a few devices).
pub const MAX_WATCHES_PER_PERSON: usize = 4;

/// A stream of notices.
pub type NoticeStream = Polled<DataAccessNotice>;

/// The open watches of a process.
pub struct Watches {
    open: Mutex<Open>,
    /// Cancelled when the server stops taking calls: every stream ends.
    stop: CancellationToken,
    max: usize,
    max_per_person: usize,
}

/// How many watches are open, in all and per person.
#[derive(Default)]
struct Open {
    all: usize,
    per_person: HashMap<ResidentId, usize>,
}

impl Watches {
    /// At most [`MAX_WATCHES`] watches, [`MAX_WATCHES_PER_PERSON`] of one person; every
    /// stream ends once `stop` is cancelled.
    pub fn new(stop: CancellationToken) -> Arc<Watches> {
        Watches::bounded(stop, MAX_WATCHES, MAX_WATCHES_PER_PERSON)
    }

    fn bounded(stop: CancellationToken, max: usize, max_per_person: usize) -> Arc<Watches> {
        Arc::new(Watches {
            open: Mutex::new(Open::default()),
            stop,
            max,
            max_per_person,
        })
    }

    /// A slot for one more watch of `person`, given back when dropped;
    /// [`QueryError::TooManyWatches`] while a bound is reached.
    pub fn slot(self: &Arc<Self>, person: &ResidentId) -> Result<WatchSlot, QueryError> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if open.all >= self.max {
            return Err(QueryError::TooManyWatches(format!(
                "this server has {} data-access watches open, the most it keeps: retry \
                 later or on another server",
                self.max
            )));
        }
        let of_person = open.per_person.entry(person.clone()).or_insert(0);
        if *of_person >= self.max_per_person {
            return Err(QueryError::TooManyWatches(format!(
                "this person's data accesses are watched {} times on this server, the most \
                 they may be: close a watch first",
                self.max_per_person
            )));
        }
        *of_person += 1;
        open.all += 1;
        Ok(WatchSlot {
            watches: Arc::clone(self),
            person: person.clone(),
        })
    }

    /// How many watches are open.
    pub fn open(&self) -> usize {
        self.open.lock().unwrap_or_else(PoisonError::into_inner).all
    }

    /// The stream of `watch`, holding `slot` while it is open; a failure is answered as
    /// a requester of `agency`'s, counted in `telemetry`.
    pub fn stream(
        &self,
        watch: Watch,
        slot: WatchSlot,
        agency: Agency,
        telemetry: Telemetry,
    ) -> NoticeStream {
        let notices = Notices {
            watch,
            agency,
            telemetry,
        };
        polled::stream(notices, EVERY, slot, self.stop.clone())
    }
}

/// One open watch of a person; its slot is free again once this drops.
pub struct WatchSlot {
    watches: Arc<Watches>,
    person: ResidentId,
}

impl Drop for WatchSlot {
    fn drop(&mut self) {
        let mut open = self
            .watches
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        open.all = open.all.saturating_sub(1);
        if let Some(count) = open.per_person.get_mut(&self.person) {
            *count -= 1;
            if *count == 0 {
                open.per_person.remove(&self.person);
            }
        }
    }
}

/// An open watch as a polled stream's source: its failures become statuses, counted.
struct Notices {
    watch: Watch,
    agency: Agency,
    telemetry: Telemetry,
}

impl polled::Source for Notices {
    type Item = DataAccessNotice;

    async fn next(&mut self) -> Result<(Vec<DataAccessNotice>, Then), Status> {
        match self.watch.poll().await {
            Ok((notices, full)) => Ok((notices, if full { Then::Again } else { Then::Wait })),
            Err(e) => Err(e.into_status(self.agency, &self.telemetry)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(first17: &str) -> ResidentId {
        ResidentId::completing(first17)
    }

    #[test]
    fn watches_are_bounded_per_person_and_in_all_and_a_closed_one_frees_its_slot() {
        let watches = Watches::bounded(CancellationToken::new(), 3, 2);
        let (alice, bea) = (person("11010519800312001"), person("31010419900521002"));
        let mut open = vec![watches.slot(&alice).unwrap(), watches.slot(&alice).unwrap()];
        let refused = watches.slot(&alice).err().expect("a third of alice's");
        let status =
            refused.into_status(Agency::Housing, &crate::telemetry::metrics::Metrics::new());
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert!(
            status.message().contains("watched 2 times"),
            "{}",
            status.message()
        );
        open.push(watches.slot(&bea).unwrap());
        let refused = watches.slot(&bea).err().expect("a fourth in all");
        assert!(refused.to_string().contains("3 data-access watches open"));
        assert_eq!(watches.open(), 3);
        open.remove(0);
        assert_eq!(watches.open(), 2);
        open.push(
            watches
                .slot(&alice)
                .expect("alice's closed one freed its slot"),
        );
        drop(open);
        assert_eq!(watches.open(), 0);
        assert!(
            watches.open.lock().unwrap().per_person.is_empty(),
            "every slot is given back"
        );
    }
}
