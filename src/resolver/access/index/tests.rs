//! The fan-out of entries to people, and the in-memory index (the Redis one is tested
//! against a real Redis in tests/e2e/audit.rs).

use std::time::{Duration, SystemTime};

use super::*;
use crate::audit::Tip;
use crate::proto::{AccessDecision, Agency, ChainStart, DataAccess};

/// Valid, fictional resident ID numbers.
fn person(first17: &str) -> String {
    format!(
        "{first17}{}",
        crate::domain::resident_id::check_character(first17)
    )
}

fn alice() -> String {
    person("11010519800312001")
}

fn bea() -> String {
    person("31010419900521002")
}

fn entry_at(at: SystemTime, access: DataAccess) -> (AuditEntry, AuditBody) {
    let body = AuditBody {
        at: Some(at.into()),
        kind: Some(Kind::Access(access)),
    };
    let mut tip = Tip::new("chain-1".into());
    tip.next = 7;
    (tip.next_entry(&body), body)
}

fn lookup(people: &[String]) -> DataAccess {
    DataAccess {
        requester_agency: Agency::Housing as i32,
        requester_service: "transfer-window".into(),
        purpose: "property-transfer".into(),
        case_id: "case-9".into(),
        method: "CheckPropertyTransfer".into(),
        person_ids: people.to_vec(),
        unit_numbers: vec!["110105001002GB00017F00030201".into()],
        sections: vec!["household".into(), "titles".into()],
        withheld: vec!["identity".into()],
        decision: AccessDecision::Allowed as i32,
        reason: String::new(),
        grant_line: 12,
        on_behalf_of: alice(),
    }
}

const DAY: Duration = Duration::from_secs(86_400);

#[test]
fn an_access_fans_out_to_each_person_without_the_others() {
    let now = SystemTime::now();
    let (entry, body) = entry_at(now, lookup(&[alice(), bea(), alice(), "nonsense".into()]));
    let accesses = person_accesses(&entry, &body, DAY);
    let people: Vec<&str> = accesses.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        people,
        [alice(), bea()],
        "deduplicated, invalid IDs left out"
    );
    for (_, access) in &accesses {
        assert_eq!(
            access,
            &PersonAccess {
                at: Some(now.into()),
                requester_agency: Agency::Housing as i32,
                requester_service: "transfer-window".into(),
                purpose: "property-transfer".into(),
                case_id: "case-9".into(),
                method: "CheckPropertyTransfer".into(),
                sections: vec!["household".into(), "titles".into()],
                decision: AccessDecision::Allowed as i32,
                chain_id: "chain-1".into(),
                sequence: 7,
                ..Default::default()
            }
        );
        // No person's ID anywhere in what a person is shown.
        let encoded = access.encode_to_vec();
        for id in [alice(), bea()] {
            assert!(!encoded.windows(id.len()).any(|w| w == id.as_bytes()));
        }
    }
}

#[test]
fn an_access_is_kept_at_its_time_and_a_refusal_goes_to_its_group() {
    let at = std::time::UNIX_EPOCH + Duration::new(1_800_000_000, 250_999_999);
    let (entry, body) = entry_at(at, lookup(&[alice()]));
    let writes = index_writes(person_accesses(&entry, &body, Duration::MAX));
    let [IndexWrite::Single { person, key, .. }] = writes.as_slice() else {
        panic!("{writes:?}");
    };
    assert_eq!(order::time_of(key), Some(1_800_000_000_250));
    assert_eq!(person, &alice());

    let mut refused = lookup(&[alice()]);
    refused.decision = AccessDecision::Denied as i32;
    refused.reason = "no grant".into();
    let (entry, body) = entry_at(at, refused);
    let writes = index_writes(person_accesses(&entry, &body, Duration::MAX));
    let [IndexWrite::Refusal { refusal, .. }] = writes.as_slice() else {
        panic!("{writes:?}");
    };
    assert_eq!(refusal.reason, "no grant");
}

#[test]
fn only_an_unreachable_or_busy_redis_is_worth_retrying() {
    let io = ::redis::RedisError::from(std::io::Error::new(
        std::io::ErrorKind::ConnectionRefused,
        "refused",
    ));
    assert!(IndexError::Redis(io).is_transient());
    assert!(!IndexError::Corrupt("x".into()).is_transient());
    let refused = ::redis::RedisError::from((::redis::ErrorKind::Client, "wrong type"));
    assert!(!IndexError::Redis(refused).is_transient());
}

#[test]
fn old_entries_and_chain_starts_add_nothing() {
    let old = SystemTime::now() - 2 * DAY;
    let (entry, body) = entry_at(old, lookup(&[alice()]));
    assert!(person_accesses(&entry, &body, DAY).is_empty());
    assert_eq!(person_accesses(&entry, &body, 3 * DAY).len(), 1);
    let start = AuditBody {
        at: Some(SystemTime::now().into()),
        kind: Some(Kind::Start(ChainStart::default())),
    };
    assert!(person_accesses(&entry, &start, DAY).is_empty());
}

/// An entry of chain `chain` at `sequence`, at `at`.
fn entry_in(chain: &str, sequence: u64, at: SystemTime, access: DataAccess) -> Vec<IndexWrite> {
    let body = AuditBody {
        at: Some(at.into()),
        kind: Some(Kind::Access(access)),
    };
    let mut tip = Tip::new(chain.into());
    tip.next = sequence;
    let entry = tip.next_entry(&body);
    index_writes(person_accesses(&entry, &body, 30 * DAY))
}

fn refusal(reason: &str) -> DataAccess {
    DataAccess {
        requester_service: "archive".into(),
        method: "GetPersonProfile".into(),
        case_id: String::new(),
        sections: Vec::new(),
        withheld: Vec::new(),
        decision: AccessDecision::Denied as i32,
        reason: reason.into(),
        grant_line: 0,
        ..lookup(&[alice()])
    }
}

fn ago(seconds: u64) -> SystemTime {
    SystemTime::now() - Duration::from_secs(seconds)
}

fn alice_id() -> ResidentId {
    ResidentId::parse(&alice()).unwrap()
}

/// Every page of Alice's list, `limit` at a time: the entries and how many pages.
async fn walk(
    index: &AccessIndex,
    limit: usize,
    retention: Duration,
) -> (Vec<PersonAccess>, usize) {
    let (mut all, mut pages, mut after) = (Vec::new(), 0, None);
    loop {
        let page = index
            .page(&alice_id(), after.as_ref(), limit, retention)
            .await
            .unwrap();
        assert!(page.accesses.len() <= limit);
        pages += 1;
        all.extend(page.accesses);
        match page.next {
            Some(next) => after = Some(next),
            None => return (all, pages),
        }
    }
}

fn place(a: &PersonAccess) -> (String, u64) {
    (a.chain_id.clone(), a.sequence)
}

#[tokio::test]
async fn a_flood_of_refusals_is_one_entry_counted_once_per_trail_entry() {
    let index = AccessIndex::memory();
    let mut writes = Vec::new();
    let mut check = lookup(&[alice()]);
    check.method = "CheckPropertyTransfer".into();
    writes.extend(entry_in("c1", 1, ago(5000), check));
    let mut opening = lookup(&[alice()]);
    opening.method = "OpenCase".into();
    writes.extend(entry_in("c1", 2, ago(4000), opening));
    for i in 0..1010u64 {
        writes.extend(entry_in("c1", 3 + i, ago(3000 - i), refusal("no grant")));
    }
    for batch in writes.chunks(100) {
        index.add(batch, 30 * DAY).await.unwrap();
    }
    // A replay of the whole trail counts nothing twice.
    index.add(&writes, 30 * DAY).await.unwrap();

    let page = index.page(&alice_id(), None, 1000, 30 * DAY).await.unwrap();
    assert_eq!(page.next, None);
    assert!(!page.dropped);
    let methods: Vec<(&str, u64)> = page
        .accesses
        .iter()
        .map(|a| (a.method.as_str(), a.count))
        .collect();
    assert_eq!(
        methods,
        [
            ("GetPersonProfile", 1010),
            ("OpenCase", 1),
            ("CheckPropertyTransfer", 1)
        ]
    );
    let flood = &page.accesses[0];
    assert_eq!(place(flood), ("c1".into(), 3), "the first refusal's place");
    let span = timestamp_ms(&flood.last_at.unwrap()) - timestamp_ms(&flood.at.unwrap());
    assert!(
        (1_009_000..1_010_000).contains(&span),
        "first to last: {span} ms"
    );
    assert_eq!(flood.reason, "no grant");
    assert_eq!(flood.decision, AccessDecision::Denied as i32);
    let single = &page.accesses[1];
    assert_eq!((single.count, single.last_at), (1, single.at));

    // Another writer's refusals of the same kind join the entry; another reason is an
    // entry of its own.
    let mut more = Vec::new();
    for i in 0..5 {
        more.extend(entry_in("c2", 1 + i, ago(100), refusal("no grant")));
    }
    more.extend(entry_in("c2", 6, ago(50), refusal("self-only")));
    index.add(&more, 30 * DAY).await.unwrap();
    let page = index.page(&alice_id(), None, 1000, 30 * DAY).await.unwrap();
    let counts: Vec<(&str, u64)> = page
        .accesses
        .iter()
        .map(|a| (a.reason.as_str(), a.count))
        .collect();
    assert_eq!(
        counts,
        [("self-only", 1), ("no grant", 1015), ("", 1), ("", 1)]
    );
}

#[tokio::test]
async fn pages_walk_every_entry_once_newest_first() {
    let index = AccessIndex::memory();
    let mut writes = Vec::new();
    // Several accesses in the same millisecond, refusals between them, of three kinds.
    let same = ago(600);
    for seq in 1..=7 {
        writes.extend(entry_in("c1", seq, same, lookup(&[alice()])));
    }
    for (seq, age) in (8..20).zip((100..700).step_by(50)) {
        let reason = ["a", "b", "c"][seq as usize % 3];
        writes.extend(entry_in("c1", seq, ago(age), refusal(reason)));
        writes.extend(entry_in("c9", seq, ago(age + 1), lookup(&[alice()])));
    }
    index.add(&writes, 30 * DAY).await.unwrap();
    let (everything, pages) = walk(&index, 1000, 30 * DAY).await;
    assert_eq!((everything.len(), pages), (7 + 12 + 3, 1));
    let times: Vec<i64> = everything
        .iter()
        .map(|a| timestamp_ms(&a.at.unwrap()))
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");
    for limit in 1..=5 {
        let (walked, pages) = walk(&index, limit, 30 * DAY).await;
        assert_eq!(walked, everything, "limit {limit}");
        assert_eq!(pages, everything.len().div_ceil(limit), "limit {limit}");
    }
}

#[tokio::test]
async fn the_bounds_drop_the_oldest_and_say_from_when_the_list_is_complete() {
    let bounds = IndexBounds {
        accesses: 3,
        refusal_groups: 2,
    };
    let index = AccessIndex::memory().with_bounds(bounds);
    let mut writes = Vec::new();
    for (seq, hours) in (1..=5).zip([5u64, 4, 3, 2, 1]) {
        let mut access = lookup(&[alice()]);
        access.purpose = format!("h{hours}");
        writes.extend(entry_in("c1", seq, ago(hours * 3600), access));
    }
    for (seq, (reason, minutes)) in (6..).zip([("x", 300u64), ("y", 30), ("z", 20)]) {
        writes.extend(entry_in("c1", seq, ago(minutes * 60), refusal(reason)));
    }
    index.add(&writes, 30 * DAY).await.unwrap();
    let page = index.page(&alice_id(), None, 100, 30 * DAY).await.unwrap();
    let shown: Vec<&str> = page
        .accesses
        .iter()
        .map(|a| {
            if a.reason.is_empty() {
                a.purpose.as_str()
            } else {
                a.reason.as_str()
            }
        })
        .collect();
    assert_eq!(shown, ["z", "y", "h1", "h2", "h3"]);
    assert!(page.dropped);
    // Dropped: h5, h4 (4 hours ago) and x (5 hours ago): complete from the newest of them.
    let complete = page
        .complete_since
        .duration_since(ago(4 * 3600))
        .unwrap_or_default();
    assert!(
        complete < Duration::from_secs(5),
        "{:?}",
        page.complete_since
    );
}

#[tokio::test]
async fn a_group_is_kept_while_its_latest_refusal_is_within_the_retention() {
    let index = AccessIndex::memory();
    let mut writes = entry_in("c1", 1, ago(10 * 86_400), refusal("old and recent"));
    writes.extend(entry_in("c1", 2, ago(3600), refusal("old and recent")));
    writes.extend(entry_in("c1", 3, ago(8 * 86_400), refusal("old only")));
    index.add(&writes, 30 * DAY).await.unwrap();
    let week = 7 * DAY;
    let page = index.page(&alice_id(), None, 100, week).await.unwrap();
    let shown: Vec<(&str, u64)> = page
        .accesses
        .iter()
        .map(|a| (a.reason.as_str(), a.count))
        .collect();
    assert_eq!(shown, [("old and recent", 2)]);
    assert!(!page.dropped, "the retention is no bound");
    // A write trims by the retention: the group refused only long ago goes.
    index
        .add(&entry_in("c1", 4, ago(60), lookup(&[alice()])), week)
        .await
        .unwrap();
    let page = index.page(&alice_id(), None, 100, 30 * DAY).await.unwrap();
    assert_eq!(page.accesses.len(), 2);
}

#[test]
fn a_late_earlier_refusal_becomes_the_groups_first_and_few_chains_are_remembered() {
    let refusal_at = |chain: &str, sequence: u64, at: SystemTime| PersonAccess {
        at: Some(at.into()),
        chain_id: chain.into(),
        sequence,
        decision: AccessDecision::Denied as i32,
        ..Default::default()
    };
    let later = refusal_at("c1", 5, ago(10));
    let state = groups::absorb(None, &[&later]).unwrap();
    let earlier = refusal_at("c2", 3, ago(100));
    let state = groups::absorb(Some(&state), &[&earlier]).unwrap();
    let entry = state.access.as_ref().unwrap();
    assert_eq!((entry.count, place(entry)), (2, ("c2".into(), 3)));
    assert_eq!(entry.last_at, later.at);
    assert_eq!(groups::absorb(Some(&state), &[&earlier, &later]), None);

    let mut state = state;
    for i in 0..(groups::MAX_CHAIN_MARKS as u64 + 4) {
        let r = refusal_at(
            &format!("n{i}"),
            1,
            SystemTime::now() + Duration::from_secs(i),
        );
        state = groups::absorb(Some(&state), &[&r]).unwrap();
    }
    assert_eq!(state.chains.len(), groups::MAX_CHAIN_MARKS);
    assert!(state.chains.iter().all(|m| m.chain_id.starts_with('n')));
    assert!(
        !state.chains.iter().any(|m| m.chain_id == "n0"),
        "the oldest go"
    );
}

#[test]
fn a_cursor_has_the_shape_of_a_key() {
    let single = order::single_key(1_800_000_000_000, "chain", 42);
    let group = order::group_key(
        1_800_000_000_000,
        &groups::GroupId::of(&PersonAccess::default()),
    );
    for key in [&single, &group] {
        assert_eq!(Cursor::from_bytes(key).unwrap().as_bytes(), key.as_slice());
    }
    let member = [single.as_slice(), b"encoded access"].concat();
    assert_eq!(
        Cursor::of_member(&member).unwrap().as_bytes(),
        single.as_slice()
    );
    for bad in [
        &b""[..],
        &single[..single.len() - 1],
        &group[..group.len() - 1],
        &[single.as_slice(), b"x"].concat(),
        &[&single[..8], &[2u8][..], &single[9..]].concat(),
    ] {
        assert_eq!(Cursor::from_bytes(bad), None, "{bad:?}");
    }
}

/// Every arrival of Alice's after `after`, read `n` at a time: (purpose or none, id).
async fn arrivals_after(index: &AccessIndex, after: ArrivalId, n: usize) -> Vec<Option<String>> {
    let (mut seen, mut after) = (Vec::new(), after);
    loop {
        let read = index.arrivals(&alice_id(), after, n, DAY).await.unwrap();
        assert!(read.len() <= n);
        let Some(last) = read.last() else {
            return seen;
        };
        assert!(last.id > after, "ids only grow");
        after = last.id;
        seen.extend(read.into_iter().map(|a| a.access.map(|a| a.purpose)));
    }
}

#[tokio::test]
async fn arrivals_come_in_the_order_indexed_once_each_without_refusals() {
    let index = AccessIndex::memory();
    assert_eq!(
        index.last_arrival(&alice_id()).await.unwrap(),
        ArrivalId::START
    );
    let with_purpose = |purpose: &str| DataAccess {
        purpose: purpose.into(),
        ..lookup(&[alice()])
    };
    let later = entry_in("c1", 1, ago(10), with_purpose("later"));
    index.add(&later, DAY).await.unwrap();
    let first = index.last_arrival(&alice_id()).await.unwrap();
    // An earlier access of another chain indexed after it, a refusal, and a replay.
    let mut batch = entry_in("c2", 1, ago(60), with_purpose("earlier"));
    batch.extend(entry_in("c1", 2, ago(5), refusal("no grant")));
    batch.extend(later);
    index.add(&batch, DAY).await.unwrap();
    let all = arrivals_after(&index, ArrivalId::START, 1).await;
    assert_eq!(all, [Some("later".into()), Some("earlier".into())]);
    let after_first = arrivals_after(&index, first, 10).await;
    assert_eq!(after_first, [Some("earlier".into())], "late, still sent");
    let last = index.last_arrival(&alice_id()).await.unwrap();
    assert!(last > first);
    assert!(arrivals_after(&index, last, 10).await.is_empty());
    let read = index.arrivals(&alice_id(), first, 10, DAY).await.unwrap();
    let access = read[0].access.as_ref().unwrap();
    assert_eq!((access.count, access.last_at), (1, access.at));
}

#[tokio::test]
async fn arrivals_that_left_the_index_come_without_their_access() {
    let bounds = IndexBounds {
        accesses: 2,
        refusal_groups: 2,
    };
    let index = AccessIndex::memory().with_bounds(bounds);
    for (seq, seconds) in (1..=3).zip([30u64, 40, 20]) {
        let access = DataAccess {
            purpose: format!("s{seconds}"),
            ..lookup(&[alice()])
        };
        index
            .add(&entry_in("c1", seq, ago(seconds), access), DAY)
            .await
            .unwrap();
    }
    // The bound dropped s40, the oldest access, and s30's arrival, the first logged.
    let seen = arrivals_after(&index, ArrivalId::START, 10).await;
    assert_eq!(seen, [None, Some("s20".into())]);
    // Out of a shorter retention: still read, without the access.
    let read = index
        .arrivals(&alice_id(), ArrivalId::START, 10, Duration::from_secs(15))
        .await
        .unwrap();
    assert_eq!(read.len(), 2);
    assert!(read.iter().all(|a| a.access.is_none()));
}
