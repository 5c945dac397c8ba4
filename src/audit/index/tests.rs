//! The fan-out of entries to people, and the in-memory index (the Redis one is tested
//! against a real Redis in tests/e2e/audit.rs).

use std::time::{Duration, SystemTime};

use super::*;
use crate::audit::chain::Tip;
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
fn the_score_is_milliseconds_since_the_epoch() {
    let at = std::time::UNIX_EPOCH + Duration::new(1_800_000_000, 250_999_999);
    let (entry, body) = entry_at(at, lookup(&[alice()]));
    let writes = index_writes(person_accesses(&entry, &body, Duration::MAX));
    assert_eq!(writes.len(), 1);
    assert_eq!(writes[0].at_ms, 1_800_000_000_250);
    assert_eq!(writes[0].person, alice());
}

#[test]
fn only_an_unreachable_or_busy_redis_is_worth_retrying() {
    let io = redis::RedisError::from(std::io::Error::new(
        std::io::ErrorKind::ConnectionRefused,
        "refused",
    ));
    assert!(IndexError::Redis(io).is_transient());
    assert!(!IndexError::Corrupt("x".into()).is_transient());
    let refused = redis::RedisError::from((redis::ErrorKind::Client, "wrong type"));
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

#[tokio::test]
async fn the_memory_index_lists_newest_first_within_limit_and_retention() {
    let index = AccessIndex::memory();
    let now = SystemTime::now();
    let mut writes = Vec::new();
    for (i, age) in [3u64, 1, 2, 30].into_iter().enumerate() {
        let mut access = lookup(&[alice()]);
        access.purpose = format!("p{i}");
        let (entry, body) = entry_at(now - Duration::from_secs(age * 3600), access);
        writes.extend(index_writes(person_accesses(&entry, &body, 7 * DAY)));
    }
    // The same writes again (a replay) change nothing.
    let twice = [writes.clone(), writes].concat();
    index.add(&twice, 7 * DAY).await.unwrap();
    let alice_id = ResidentId::parse(&alice()).unwrap();
    let purposes =
        |list: Vec<PersonAccess>| -> Vec<String> { list.into_iter().map(|a| a.purpose).collect() };
    assert_eq!(
        purposes(index.list(&alice_id, 10, 7 * DAY).await.unwrap()),
        ["p1", "p2", "p0", "p3"]
    );
    assert_eq!(
        purposes(index.list(&alice_id, 2, 7 * DAY).await.unwrap()),
        ["p1", "p2"]
    );
    assert_eq!(
        purposes(
            index
                .list(&alice_id, 10, Duration::from_secs(4 * 3600))
                .await
                .unwrap()
        ),
        ["p1", "p2", "p0"]
    );
    assert!(index.list(&alice_id, 0, DAY).await.unwrap().is_empty());
    let bea_id = ResidentId::parse(&bea()).unwrap();
    assert!(index.list(&bea_id, 10, DAY).await.unwrap().is_empty());

    // Writing trims what fell out of the retention.
    let (entry, body) = entry_at(now, lookup(&[alice()]));
    index
        .add(&index_writes(person_accesses(&entry, &body, DAY)), DAY)
        .await
        .unwrap();
    assert_eq!(index.list(&alice_id, 10, 7 * DAY).await.unwrap().len(), 4);
}
