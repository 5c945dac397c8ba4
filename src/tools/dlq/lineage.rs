//! Which dead letters a replay sends: a letter is sent once, and a letter whose event was
//! replayed before is held.
//!
//! A replayed event carries its lineage (the original position of the event the first
//! letter was made of, and how many replays it went through), and a letter made of it
//! carries the lineage on. Without it, a letter whose cause is not fixed would come back
//! after every replay and be sent again by the next, and a rebuild, which reads the
//! original and every replayed copy again, would multiply them. So a letter is held —
//! only `dlq replay --again` sends it — when it carries a lineage (it failed again after a
//! replay) or when another letter of the same original was sent or failed again (a
//! rebuild's letter of an event already replayed). Of the letters of one original, a
//! replay sends one.

use std::collections::{BTreeMap, HashSet};

use super::NotReplayable;
use crate::tools::decode::DeadLetter;

/// Where a letter stands with replays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// A replay sent it.
    Sent,
    /// The next replay sends it.
    Pending,
    /// Its event was replayed before (it failed again after a replay, or another letter
    /// of its original was sent): only `dlq replay --again` sends it.
    Held,
    /// It cannot be sent back.
    NotReplayable(NotReplayable),
}

impl Status {
    /// The status as `dlq list` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Sent => "sent",
            Status::Pending => "pending",
            Status::Held => "held",
            Status::NotReplayable(_) => "not-replayable",
        }
    }
}

/// One dead letter as a replay judges it.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    /// Its partition of the dead-letter topic.
    pub partition: i32,
    /// Its offset there.
    pub offset: i64,
    /// What its headers say.
    pub letter: DeadLetter,
    /// The record topic it goes back to, or why it cannot.
    pub destination: Result<String, NotReplayable>,
}

/// The status of each of `entries` (in the order given: partitions in order, each by
/// offset), where `passed(entry)` says whether a replay of its kind already went past it.
pub(super) fn plan(entries: &[Entry], passed: impl Fn(&Entry) -> bool) -> Vec<Status> {
    let failed_again: HashSet<String> = entries
        .iter()
        .filter(|e| e.letter.replays > 0)
        .filter_map(|e| e.letter.original())
        .collect();
    let mut first = HashSet::new();
    entries
        .iter()
        .map(|entry| {
            if let Err(why) = entry.destination {
                return Status::NotReplayable(why);
            }
            let original = entry.letter.original();
            // Not a replayed event's letter, and the first letter of its original.
            let first_of_original = entry.letter.replays == 0
                && original.as_ref().is_none_or(|o| first.insert(o.clone()));
            let failed_again_since = original.as_ref().is_some_and(|o| failed_again.contains(o));
            match (first_of_original, passed(entry)) {
                (true, true) => Status::Sent,
                (true, false) if !failed_again_since => Status::Pending,
                _ => Status::Held,
            }
        })
        .collect()
}

/// The most replays any letter of each original went through: a replay of one of them
/// is the next.
pub(super) fn replays_by_original(entries: &[Entry]) -> BTreeMap<String, u32> {
    let mut most = BTreeMap::new();
    for entry in entries {
        if let Some(original) = entry.letter.original() {
            let n = most.entry(original).or_insert(0);
            *n = (*n).max(entry.letter.replays);
        }
    }
    most
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolver::dead_letter::DeadLetterKind;

    const TOPIC: &str = "govlink.records.housing.v1";

    /// A letter at `offset` of the event read at `origin` of the record topic, with
    /// `lineage` (original offset, replays) when a replay sent that event.
    fn entry(offset: i64, origin: i64, lineage: Option<(i64, u32)>) -> Entry {
        Entry {
            partition: 0,
            offset,
            letter: DeadLetter {
                reason: "not a RecordEvent: bad".into(),
                kind: DeadLetterKind::Undecodable,
                topic: Some(TOPIC.into()),
                partition: Some(2),
                offset: Some(origin),
                truncated_from: None,
                replay_original: lineage.map(|(o, _)| format!("{TOPIC}/2/{o}")),
                replays: lineage.map_or(0, |(_, n)| n),
            },
            destination: Ok(TOPIC.into()),
        }
    }

    #[test]
    fn a_letter_is_sent_once_and_its_comeback_is_held() {
        // The event at 10 failed; a replay sent it (position 1), its copy at 11 failed.
        let entries = [entry(0, 10, None), entry(1, 11, Some((10, 1)))];
        assert_eq!(
            plan(&entries, |e| e.offset < 1),
            [Status::Sent, Status::Held]
        );
        // Before any replay: the first letter is pending.
        assert_eq!(plan(&entries[..1], |_| false), [Status::Pending]);
    }

    #[test]
    fn a_rebuilds_letters_of_a_replayed_event_are_held() {
        // After a rebuild: the original (10) and the replayed copy (11) failed again.
        let entries = [
            entry(0, 10, None),
            entry(1, 11, Some((10, 1))),
            entry(2, 10, None),
            entry(3, 11, Some((10, 1))),
        ];
        assert_eq!(
            plan(&entries, |e| e.offset < 2),
            [Status::Sent, Status::Held, Status::Held, Status::Held]
        );
        // Even read before the comeback (another partition, say), the original's
        // second letter is held: a letter of it failed again.
        let reordered = [entries[2].clone(), entries[0].clone(), entries[1].clone()];
        assert_eq!(
            plan(&reordered, |_| false),
            [Status::Held, Status::Held, Status::Held]
        );
        assert_eq!(replays_by_original(&entries)[&format!("{TOPIC}/2/10")], 1);
    }

    #[test]
    fn of_two_letters_of_one_event_a_replay_sends_one() {
        // A rebuild before any replay: the event at 10 was dead-lettered twice.
        let entries = [entry(0, 10, None), entry(1, 10, None), entry(2, 12, None)];
        assert_eq!(
            plan(&entries, |_| false),
            [Status::Pending, Status::Held, Status::Pending]
        );
    }

    #[test]
    fn letters_that_cannot_go_back_say_why() {
        let mut truncated = entry(0, 10, None);
        truncated.destination = Err(NotReplayable::Truncated);
        assert_eq!(
            plan(&[truncated], |_| false),
            [Status::NotReplayable(NotReplayable::Truncated)]
        );
    }
}
