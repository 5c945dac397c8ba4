//! The order in which a person's accesses reached the index, behind `WatchDataAccesses`.
//!
//! A person's list is ordered by the time of each access, and an access can be indexed
//! after a later one (each audit chain is its own partition, read at its own pace, maybe
//! by another resolver). A watch that followed the list's order would miss such a late
//! access. So each access kept on its own is also logged, when it is first indexed, with
//! an [`ArrivalId`] that only grows: a watch resumes after the last id it sent and misses
//! nothing. In Redis the log is a stream (`acn:{p:<id>}`, entry ids assigned by Redis),
//! appended in the same script that adds the access only if the access was not there
//! yet, so a replayed or doubly indexed access is logged once.

use std::fmt;

/// Where an access is in a person's arrival log: a Redis stream entry id (milliseconds,
/// then a sequence within the millisecond). Ids only grow within a person's log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ArrivalId {
    /// Milliseconds since the epoch when the entry was logged.
    pub ms: u64,
    /// The entry's place among those logged in the same millisecond.
    pub seq: u64,
}

/// The bytes an [`ArrivalId`] takes in a cursor.
const ARRIVAL_ID_LEN: usize = 16;

impl ArrivalId {
    /// The id before every entry: a log read after it returns everything.
    pub const START: ArrivalId = ArrivalId { ms: 0, seq: 0 };

    /// The id as Redis writes it, `<ms>-<seq>`, if `text` is one.
    pub fn parse(text: &str) -> Option<ArrivalId> {
        let (ms, seq) = text.split_once('-')?;
        Some(ArrivalId {
            ms: ms.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }

    /// The id as bytes (big-endian: bytes order as ids do).
    pub fn to_bytes(self) -> [u8; ARRIVAL_ID_LEN] {
        let mut out = [0; ARRIVAL_ID_LEN];
        out[..8].copy_from_slice(&self.ms.to_be_bytes());
        out[8..].copy_from_slice(&self.seq.to_be_bytes());
        out
    }

    /// The id of [`ArrivalId::to_bytes`]'s bytes, if there are exactly that many.
    pub fn from_bytes(bytes: &[u8]) -> Option<ArrivalId> {
        let bytes: [u8; ARRIVAL_ID_LEN] = bytes.try_into().ok()?;
        let (ms, seq) = bytes.split_at(8);
        Some(ArrivalId {
            ms: u64::from_be_bytes(ms.try_into().ok()?),
            seq: u64::from_be_bytes(seq.try_into().ok()?),
        })
    }

    /// The id after `self` for an entry logged at `now_ms`, as Redis assigns them: the
    /// clock's millisecond, or the same one with the next sequence if the clock has not
    /// moved past the last id (or went back).
    pub(super) fn next_at(self, now_ms: u64) -> ArrivalId {
        if now_ms > self.ms {
            ArrivalId { ms: now_ms, seq: 0 }
        } else {
            ArrivalId {
                ms: self.ms,
                seq: self.seq.saturating_add(1),
            }
        }
    }
}

impl fmt::Display for ArrivalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// One entry of a person's arrival log as a watch reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Arrival {
    /// Where it is in the log: a watch resumes after it.
    pub id: ArrivalId,
    /// The access, with `count` 1 and `last_at` its time; `None` when the access left
    /// the index since (out of the retention or beyond the bounds).
    pub access: Option<crate::proto::PersonAccess>,
}

/// The most arrivals one read returns.
pub const MAX_ARRIVALS_PER_READ: usize = 100;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_reads_as_redis_writes_it_and_orders_as_its_bytes() {
        let id = ArrivalId::parse("1765000000123-7").unwrap();
        assert_eq!(
            id,
            ArrivalId {
                ms: 1_765_000_000_123,
                seq: 7
            }
        );
        assert_eq!(id.to_string(), "1765000000123-7");
        assert_eq!(ArrivalId::from_bytes(&id.to_bytes()), Some(id));
        for bad in ["", "12", "12-", "-3", "a-1", "1-2-3", "1--2"] {
            assert_eq!(ArrivalId::parse(bad), None, "{bad}");
        }
        assert_eq!(ArrivalId::from_bytes(&[0; 15]), None);
        let later = ArrivalId { ms: id.ms, seq: 8 };
        assert!(later > id && later.to_bytes() > id.to_bytes());
        let much_later = ArrivalId {
            ms: id.ms + 1,
            seq: 0,
        };
        assert!(much_later > later && much_later.to_bytes() > later.to_bytes());
    }

    #[test]
    fn the_next_id_grows_even_when_the_clock_does_not() {
        let id = ArrivalId { ms: 100, seq: 4 };
        assert_eq!(id.next_at(101), ArrivalId { ms: 101, seq: 0 });
        assert_eq!(id.next_at(100), ArrivalId { ms: 100, seq: 5 });
        assert_eq!(id.next_at(50), ArrivalId { ms: 100, seq: 5 });
    }
}
