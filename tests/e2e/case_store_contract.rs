//! The case store contract, run against Redis and against the in-memory store of `dev`
//! and `demo`: both must behave the same.

use govlink::cases::store::{CaseList, CaseStore, MemoryCaseStore};
use govlink::proto::{
    Agency, Case, CaseEvent, CaseKind, CaseParams, CaseState, HouseholdMoveParams, Step, StepState,
    Task, case_params,
};
use govlink::redis_link::RedisLink;

use crate::helpers::*;

async fn redis_store() -> CaseStore {
    let prefix = format!("govlink-test:{}:", unique("cases"));
    CaseStore::connect(&RedisLink::new(redis_url()), &prefix)
        .await
        .expect("redis case store")
}

async fn memory_store() -> CaseStore {
    CaseStore::Memory(MemoryCaseStore::new())
}

const PERSON: &str = "11010519800312001X";

/// Case `id` at `sequence`, a household move with one step on public security's task.
fn case(id: &str, sequence: u64, opened_s: i64, step: StepState) -> Case {
    Case {
        case_id: id.into(),
        sequence,
        state: CaseState::Open as i32,
        opened_at: Some(prost_types::Timestamp {
            seconds: opened_s,
            nanos: 0,
        }),
        params: Some(CaseParams {
            kind: Some(case_params::Kind::HouseholdMove(HouseholdMoveParams {
                person_id: PERSON.into(),
                ..Default::default()
            })),
        }),
        steps: vec![Step {
            step_id: "move-out".into(),
            agency: Agency::PublicSecurity as i32,
            state: step as i32,
            task_id: format!("{id}/move-out"),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn event(id: &str, sequence: u64) -> CaseEvent {
    CaseEvent {
        case_id: id.into(),
        sequence,
        command_id: format!("command-{sequence}"),
        ..Default::default()
    }
}

fn task(id: &str, agency: Agency) -> Task {
    Task {
        task_id: id.into(),
        agency: agency as i32,
        ..Default::default()
    }
}

fn sequences(events: &[CaseEvent]) -> Vec<u64> {
    events.iter().map(|e| e.sequence).collect()
}

async fn a_commit_lands_only_on_the_sequence_it_read(new: impl AsyncFn() -> CaseStore) {
    let store = new().await;
    assert_eq!(store.load("c1").await.unwrap().case, None);
    let first = case("c1", 2, 100, StepState::Open);
    let opened = [event("c1", 1), event("c1", 2)];
    assert!(store.commit(0, &first, &opened).await.unwrap());
    // A second writer that also read "not opened" changes nothing.
    let rival = case("c1", 1, 999, StepState::Open);
    assert!(!store.commit(0, &rival, &[event("c1", 1)]).await.unwrap());

    let stored = store.load("c1").await.unwrap();
    assert_eq!(stored.case, Some(first.clone()));
    assert_eq!(sequences(&stored.outbox), [1, 2]);

    let next = case("c1", 3, 100, StepState::Done);
    assert!(!store.commit(1, &next, &[event("c1", 3)]).await.unwrap());
    assert!(store.commit(2, &next, &[event("c1", 3)]).await.unwrap());
    let stored = store.load("c1").await.unwrap();
    assert_eq!(stored.case.unwrap().sequence, 3);
    assert_eq!(sequences(&stored.outbox), [1, 2, 3], "in sequence order");
}

async fn published_events_leave_the_outbox_and_stay_in_the_history(
    new: impl AsyncFn() -> CaseStore,
) {
    let store = new().await;
    let events = [event("c2", 1), event("c2", 2), event("c2", 3)];
    assert!(
        store
            .commit(0, &case("c2", 3, 100, StepState::Open), &events)
            .await
            .unwrap()
    );
    store.published("c2", &events[..2]).await.unwrap();
    assert_eq!(sequences(&store.load("c2").await.unwrap().outbox), [3]);
    store.published("c2", &events[..2]).await.unwrap();
    assert_eq!(sequences(&store.history("c2", 0).await.unwrap()), [1, 2, 3]);
    assert_eq!(sequences(&store.history("c2", 2).await.unwrap()), [3]);
    assert!(store.history("c2", 3).await.unwrap().is_empty());
    assert!(store.history("unknown", 0).await.unwrap().is_empty());
}

async fn an_open_case_is_found_by_its_subjects_until_it_closes(new: impl AsyncFn() -> CaseStore) {
    let store = new().await;
    let subject = format!("p:{PERSON}");
    let open = case("c3", 1, 100, StepState::Open);
    store.index(&open).await.unwrap();
    store.index(&open).await.unwrap();
    assert_eq!(store.watching(&subject).await.unwrap(), ["c3"]);
    assert_eq!(store.open_cases().await.unwrap(), ["c3"]);

    let mut closed = case("c3", 2, 100, StepState::Done);
    closed.state = CaseState::Completed as i32;
    store.index(&closed).await.unwrap();
    assert!(store.watching(&subject).await.unwrap().is_empty());
    assert!(store.open_cases().await.unwrap().is_empty());
    assert_eq!(
        store.newest(10).await.unwrap(),
        ["c3"],
        "closed cases stay listed"
    );
}

async fn cases_are_listed_newest_first_by_their_first_opening(new: impl AsyncFn() -> CaseStore) {
    let store = new().await;
    for (id, opened) in [("old", 100), ("newest", 300), ("middle", 200)] {
        store
            .index(&case(id, 1, opened, StepState::Open))
            .await
            .unwrap();
    }
    // Indexed again with a later time (a re-index after a crash): keeps its place.
    store
        .index(&case("old", 2, 400, StepState::Open))
        .await
        .unwrap();
    assert_eq!(store.newest(10).await.unwrap(), ["newest", "middle", "old"]);
    assert_eq!(store.newest(2).await.unwrap(), ["newest", "middle"]);
}

async fn tasks_wait_for_their_ack_or_their_step_to_close(new: impl AsyncFn() -> CaseStore) {
    let store = new().await;
    store
        .add_task(&task("c4/move-out", Agency::PublicSecurity))
        .await
        .unwrap();
    store
        .add_task(&task("c5/move-out", Agency::PublicSecurity))
        .await
        .unwrap();
    store
        .add_task(&task("c4/loan", Agency::ProvidentFund))
        .await
        .unwrap();
    let ids = async |agency| -> Vec<String> {
        let tasks = store.tasks(agency).await.unwrap();
        tasks.into_iter().map(|t| t.task_id).collect()
    };
    assert_eq!(
        ids(Agency::PublicSecurity).await,
        ["c4/move-out", "c5/move-out"]
    );

    store
        .ack_task(Agency::PublicSecurity, "c5/move-out")
        .await
        .unwrap();
    assert_eq!(ids(Agency::PublicSecurity).await, ["c4/move-out"]);
    // An open step keeps its task; a done one drops it.
    store
        .index(&case("c4", 1, 100, StepState::Open))
        .await
        .unwrap();
    assert_eq!(ids(Agency::PublicSecurity).await, ["c4/move-out"]);
    store
        .index(&case("c4", 2, 100, StepState::Done))
        .await
        .unwrap();
    assert!(ids(Agency::PublicSecurity).await.is_empty());
    assert_eq!(ids(Agency::ProvidentFund).await, ["c4/loan"]);
    assert!(ids(Agency::Housing).await.is_empty());
}

async fn a_restore_puts_back_older_or_missing_views_only(new: impl AsyncFn() -> CaseStore) {
    let store = new().await;
    let history = [event("c6", 1), event("c6", 2)];
    let folded = case("c6", 2, 100, StepState::Open);
    assert!(store.restore(&folded, &history).await.unwrap());
    let stored = store.load("c6").await.unwrap();
    assert_eq!(stored.case, Some(folded.clone()));
    assert!(
        stored.outbox.is_empty(),
        "restored events are on the topic already"
    );
    assert_eq!(sequences(&store.history("c6", 0).await.unwrap()), [1, 2]);
    assert!(
        !store.restore(&folded, &history).await.unwrap(),
        "already current"
    );

    // An engine moved the case on meanwhile: its view stays.
    let newer = case("c6", 3, 100, StepState::Done);
    assert!(store.commit(2, &newer, &[event("c6", 3)]).await.unwrap());
    assert!(!store.restore(&folded, &history).await.unwrap());
    assert_eq!(store.load("c6").await.unwrap().case, Some(newer));
    assert_eq!(sequences(&store.history("c6", 0).await.unwrap()), [1, 2, 3]);
}

async fn cases_are_listed_by_person_work_list_kind_and_state(new: impl AsyncFn() -> CaseStore) {
    let store = new().await;
    let other = "31010419900521002X";
    let mut cases = Vec::new();
    for (id, person, opened) in [("m1", PERSON, 100), ("m2", other, 200), ("m3", PERSON, 300)] {
        let mut c = case(id, 1, opened, StepState::Open);
        c.kind = CaseKind::HouseholdMove as i32;
        if let Some(case_params::Kind::HouseholdMove(p)) =
            c.params.as_mut().and_then(|p| p.kind.as_mut())
        {
            p.person_id = person.into();
        }
        assert!(store.commit(0, &c, &[]).await.unwrap());
        store.index(&c).await.unwrap();
        cases.push(c);
    }
    let page =
        async |list: CaseList, start, count| store.list_page(&list, start, count).await.unwrap();
    let person = CaseList::Person(PERSON.into());
    let work = CaseList::OpenStepsOf(Agency::PublicSecurity);
    let open = CaseList::State(CaseState::Open);
    assert_eq!(
        page(person.clone(), 0, 10).await,
        (vec!["m3".into(), "m1".into()], false)
    );
    assert_eq!(page(person.clone(), 0, 1).await, (vec!["m3".into()], true));
    assert_eq!(page(person.clone(), 1, 1).await, (vec!["m1".into()], false));
    assert_eq!(page(work.clone(), 0, 10).await.0, ["m3", "m2", "m1"]);
    assert_eq!(
        page(CaseList::Kind(CaseKind::HouseholdMove), 0, 10).await.0,
        ["m3", "m2", "m1"]
    );
    assert!(
        page(CaseList::OpenStepsOf(Agency::Housing), 0, 10)
            .await
            .0
            .is_empty()
    );

    // m3's step is done and the case completed: off the work list and the open cases,
    // on the completed ones, still the person's.
    let mut done = case("m3", 2, 300, StepState::Done);
    done.state = CaseState::Completed as i32;
    done.kind = CaseKind::HouseholdMove as i32;
    assert!(store.commit(1, &done, &[]).await.unwrap());
    store.index(&done).await.unwrap();
    assert_eq!(page(work, 0, 10).await.0, ["m2", "m1"]);
    assert_eq!(page(open.clone(), 0, 10).await.0, ["m2", "m1"]);
    assert_eq!(
        page(CaseList::State(CaseState::Completed), 0, 10).await.0,
        ["m3"]
    );
    assert_eq!(page(person.clone(), 0, 10).await.0, ["m3", "m1"]);
    assert_eq!(
        store
            .list_sizes(&[person, open, CaseList::All])
            .await
            .unwrap(),
        [2, 2, 3]
    );

    // The views of a page in one call, in its order; a case never stored is None.
    let ids = ["m3".to_owned(), "nobody".to_owned(), "m1".to_owned()];
    let views = store.views(&ids).await.unwrap();
    assert_eq!(views, [Some(done), None, Some(cases[0].clone())]);

    // Relisting every case (as an engine does at start) marks the lists current; once
    // current, it is a no-op.
    store.relist().await.unwrap();
    assert!(store.lists_current().await.unwrap());
    assert_eq!(store.relist().await.unwrap(), 0);
    assert_eq!(store.list_sizes(&[CaseList::All]).await.unwrap(), [3]);
}

async fn every_change_of_an_agencys_tasks_is_counted(new: impl AsyncFn() -> CaseStore) {
    let store = new().await;
    let agency = Agency::PublicSecurity;
    assert_eq!(store.task_changes(agency).await.unwrap(), 0);
    store.add_task(&task("c7/move-out", agency)).await.unwrap();
    let after_add = store.task_changes(agency).await.unwrap();
    assert!(after_add > 0);
    let snapshot = store.task_snapshot(agency).await.unwrap();
    assert_eq!(snapshot.changes, after_add);
    assert_eq!(snapshot.tasks, [task("c7/move-out", agency)]);
    assert_eq!(store.task_changes(Agency::Housing).await.unwrap(), 0);

    // A withdrawal replaces the task: a change.
    let mut withdrawn = task("c7/move-out", agency);
    withdrawn.withdrawn = true;
    store.add_task(&withdrawn).await.unwrap();
    let after_withdrawal = store.task_changes(agency).await.unwrap();
    assert!(after_withdrawal > after_add);
    // Acknowledging one not kept changes nothing; one kept is a change.
    store.ack_task(agency, "c7/unknown").await.unwrap();
    assert_eq!(store.task_changes(agency).await.unwrap(), after_withdrawal);
    store.ack_task(agency, "c7/move-out").await.unwrap();
    let after_ack = store.task_changes(agency).await.unwrap();
    assert!(after_ack > after_withdrawal);
    // So is a task the engine drops when its step closes, but only once.
    store.add_task(&task("c8/move-out", agency)).await.unwrap();
    let before_drop = store.task_changes(agency).await.unwrap();
    store
        .index(&case("c8", 2, 100, StepState::Done))
        .await
        .unwrap();
    let after_drop = store.task_changes(agency).await.unwrap();
    assert!(after_drop > before_drop);
    store
        .index(&case("c8", 2, 100, StepState::Done))
        .await
        .unwrap();
    assert_eq!(store.task_changes(agency).await.unwrap(), after_drop);
    let snapshot = store.task_snapshot(agency).await.unwrap();
    assert!(snapshot.tasks.is_empty());
    assert_eq!(snapshot.changes, after_drop);
}

macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod redis {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(super::redis_store).await;
                }
            )*
        }
        mod memory {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(super::memory_store).await;
                }
            )*
        }
    };
}

contract!(
    a_commit_lands_only_on_the_sequence_it_read,
    published_events_leave_the_outbox_and_stay_in_the_history,
    an_open_case_is_found_by_its_subjects_until_it_closes,
    cases_are_listed_newest_first_by_their_first_opening,
    tasks_wait_for_their_ack_or_their_step_to_close,
    a_restore_puts_back_older_or_missing_views_only,
    cases_are_listed_by_person_work_list_kind_and_state,
    every_change_of_an_agencys_tasks_is_counted,
);
