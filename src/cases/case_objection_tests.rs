//! A data-objection case: one step for the record's owner, done by a corrected version,
//! or closed by the owner's rejection.

use super::*;

const KEY: &str = "public-security/household_registration/h-1";

fn objection() -> CaseParams {
    CaseParams {
        kind: Some(proto::case_params::Kind::DataObjection(
            proto::DataObjectionParams {
                record_key: KEY.into(),
                version: 1,
                disputed_fields: vec!["address".into()],
                note: "moved out in 2024".into(),
                person_id: SELLER_A.into(),
                subjects: vec![format!("p:{SELLER_A}"), format!("u:{UNIT}")],
            },
        )),
    }
}

fn registered(version: u64) -> RecordEvent {
    household(
        "h-1",
        version,
        SELLER_A,
        UNIT_ADDRESS,
        UNIT,
        HouseholdStatus::Registered,
    )
}

#[test]
fn an_objection_is_the_record_owners_task_due_in_five_working_days() {
    let mut h = Harness::new();
    let events = h.run(open(objection()), &[registered(1)]).unwrap();
    assert_eq!(kinds(&events), ["opened", "step opened"]);
    let step = h.step(StepKind::ObjectionResolved);
    assert_eq!(step.agency(), Agency::PublicSecurity);
    assert_eq!(step.working_days, 5);
    let due = h.calendar.deadline(h.today, 5);
    assert_eq!(step.due_on, Some(wire(due)));
    assert!(
        due > date(2026, 2, 20),
        "the Spring Festival is not counted"
    );
    assert_eq!(h.case().kind(), proto::CaseKind::DataObjection);
}

#[test]
fn the_same_version_proves_nothing_and_a_corrected_one_completes_the_objection() {
    let mut h = Harness::new();
    h.run(open(objection()), &[registered(1)]).unwrap();
    assert!(h.run(changed(), &[registered(1)]).unwrap().is_empty());
    let events = h.run(changed(), &[registered(2)]).unwrap();
    assert_eq!(kinds(&events), ["step completed", "completed"]);
    let step = h.step(StepKind::ObjectionResolved);
    match &step.completed_by {
        Some(step::CompletedBy::Record(proof)) => {
            assert_eq!((proof.record_key.as_str(), proof.version), (KEY, 2));
        }
        other => panic!("completed by {other:?}"),
    }
    assert_eq!(h.case().state(), CaseState::Completed);
}

#[test]
fn a_rejection_with_a_reason_closes_the_objection_and_only_the_owner_may_reject() {
    let mut h = Harness::new();
    h.run(open(objection()), &[registered(1)]).unwrap();
    let task = h.step(StepKind::ObjectionResolved).task_id.clone();
    let reject = |agency: Agency| {
        case_command::Body::RejectTask(proto::RejectTaskCommand {
            task_id: task.clone(),
            agency: agency as i32,
            reason: "the registration is correct as recorded".into(),
        })
    };
    assert!(h.run(reject(Agency::Housing), &[registered(1)]).is_err());
    let events = h
        .run(reject(Agency::PublicSecurity), &[registered(1)])
        .unwrap();
    assert_eq!(kinds(&events), ["step rejected", "completed"]);
    assert_eq!(h.case().state(), CaseState::Completed);
    let step = h.step(StepKind::ObjectionResolved);
    assert_eq!(step.state(), StepState::Rejected);
    assert_eq!(step.rejection, "the registration is correct as recorded");
    // Closed: a later correction changes nothing.
    assert!(h.run(changed(), &[registered(2)]).unwrap().is_empty());
}

#[test]
fn an_overdue_objection_is_escalated() {
    let mut h = Harness::new();
    h.run(open(objection()), &[registered(1)]).unwrap();
    h.later(40, date(2026, 3, 25));
    let check = case_command::Body::CheckDeadlines(proto::CheckDeadlinesCommand {});
    let events = h.run(check, &[registered(1)]).unwrap();
    assert_eq!(kinds(&events), ["step overdue"]);
    assert!(h.step(StepKind::ObjectionResolved).overdue);
}
