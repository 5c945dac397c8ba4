use std::time::{Duration, SystemTime};

use super::*;
use crate::cases::plan::tests::sale;
use crate::proto::{CaseParams, HouseholdStatus, LoanStatus, SaleContractStatus, StepKind};
use crate::resolver::checks::fixtures::*;

const CASE: &str = "case-1";

/// A case under test: its events so far, folded, and the clock the commands carry.
struct Harness {
    case: Option<Case>,
    events: Vec<CaseEvent>,
    calendar: WorkCalendar,
    working_days: crate::cases::plan::WorkingDays,
    now: SystemTime,
    today: CivilDate,
    commands: u32,
}

impl Harness {
    fn new() -> Harness {
        Harness {
            case: None,
            events: Vec::new(),
            calendar: WorkCalendar::embedded().unwrap(),
            working_days: Default::default(),
            // Friday 2026-02-13, the last working day before the Spring Festival.
            now: SystemTime::UNIX_EPOCH + Duration::from_secs(1_770_940_800),
            today: date(2026, 2, 13),
            commands: 0,
        }
    }

    /// Runs `body` as a fresh command; returns the events it caused.
    fn run(
        &mut self,
        body: case_command::Body,
        records: &[RecordEvent],
    ) -> Result<Vec<CaseEvent>, Refusal> {
        self.commands += 1;
        let command = CaseCommand {
            command_id: format!("cmd-{}", self.commands),
            case_id: CASE.into(),
            at: Some(self.now.into()),
            body: Some(body),
        };
        self.replay(&command, records)
    }

    /// Applies `command` (possibly again); returns the events it caused.
    fn replay(
        &mut self,
        command: &CaseCommand,
        records: &[RecordEvent],
    ) -> Result<Vec<CaseEvent>, Refusal> {
        let cx = Context {
            now: self.now,
            today: self.today,
            calendar: &self.calendar,
            records,
            working_days: &self.working_days,
        };
        let bodies = decide(self.case.as_ref(), command, &cx)?;
        let events = number(self.case.as_ref(), command, bodies);
        for e in &events {
            self.case = Some(apply(self.case.take(), e));
        }
        self.events.extend(events.clone());
        Ok(events)
    }

    fn case(&self) -> &Case {
        self.case.as_ref().expect("opened")
    }

    fn step(&self, kind: StepKind) -> &Step {
        self.case()
            .steps
            .iter()
            .find(|s| s.kind() == kind)
            .expect("planned")
    }

    fn later(&mut self, days: u64, today: CivilDate) {
        self.now += Duration::from_secs(days * 86_400);
        self.today = today;
    }
}

fn open(params: CaseParams) -> case_command::Body {
    case_command::Body::Open(proto::OpenCaseCommand {
        kind: 0,
        params: Some(params),
        opened_by: "housing/transfer-window".into(),
        purpose: "property-transfer".into(),
        request_id: "req-1".into(),
    })
}

fn complete(task_id: &str, agency: Agency) -> case_command::Body {
    case_command::Body::CompleteTask(proto::CompleteTaskCommand {
        task_id: task_id.into(),
        agency: agency as i32,
        outcome: "settled".into(),
        note: String::new(),
    })
}

fn changed() -> case_command::Body {
    case_command::Body::RecordChanged(proto::RecordChangedCommand::default())
}

fn kinds(events: &[CaseEvent]) -> Vec<&'static str> {
    use case_event::Body as E;
    events
        .iter()
        .map(|e| match e.body.as_ref().expect("a body") {
            E::Opened(_) => "opened",
            E::StepOpened(_) => "step opened",
            E::StepCompleted(_) => "step completed",
            E::StepRejected(_) => "step rejected",
            E::StepOverdue(_) => "step overdue",
            E::StepDropped(_) => "step dropped",
            E::StepReopened(_) => "step reopened",
            E::StepPulledBack(_) => "step pulled back",
            E::Completed(_) => "completed",
            E::Cancelled(_) => "cancelled",
        })
        .collect()
}

/// The flat as the window found it: the seller registered there, a loan outstanding,
/// the contract filed, the title still the seller's.
fn at_opening() -> Vec<RecordEvent> {
    vec![
        household(
            "h-1",
            1,
            SELLER_A,
            UNIT_ADDRESS,
            UNIT,
            HouseholdStatus::Registered,
        ),
        loan_event("l-1", 1, SELLER_A, LoanStatus::Repaying, 10),
        contract(
            "C-1",
            2,
            UNIT,
            &[SELLER_A],
            &[BUYER_A],
            SaleContractStatus::Filed,
        ),
        title(1, &[(SELLER_A, 10_000)], false),
    ]
}

#[test]
fn a_sale_runs_from_opening_to_completion_through_records_and_a_task() {
    let mut h = Harness::new();
    let mut records = at_opening();
    let events = h.run(open(sale()), &records).unwrap();
    // The filed contract proves its step at opening; the two independent open steps
    // become tasks due three working days later... after the Spring Festival.
    assert_eq!(
        kinds(&events),
        ["opened", "step completed", "step opened", "step opened"]
    );
    assert_eq!(
        events.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    let contract_step = h.step(StepKind::SaleContractFiled);
    assert_eq!(contract_step.state(), StepState::Done);
    assert!(matches!(&contract_step.completed_by,
        Some(step::CompletedBy::Record(p)) if p.record_key == "housing/sale_contract/C-1" && p.version == 2));
    let household_step = h.step(StepKind::SellerHouseholdMovedOut).clone();
    assert_eq!(household_step.state(), StepState::Open);
    assert_eq!(household_step.agency(), Agency::PublicSecurity);
    // 5 working days from Friday 2026-02-13: the 14th (a make-up Saturday), then the
    // 24th to the 27th, after the holidays of the 15th to the 23rd.
    assert_eq!(
        civil(household_step.due_on.as_ref().unwrap()),
        Some(date(2026, 2, 27))
    );
    assert_eq!(
        h.step(StepKind::TitleRegistered).state(),
        StepState::Pending
    );

    // Public security moves the household out: the record completes the step.
    h.later(11, date(2026, 2, 24));
    records[0] = household(
        "h-1",
        2,
        SELLER_A,
        UNIT_ADDRESS,
        UNIT,
        HouseholdStatus::MovedOut,
    );
    assert_eq!(
        kinds(&h.run(changed(), &records).unwrap()),
        ["step completed"]
    );
    let done = h.step(StepKind::SellerHouseholdMovedOut);
    assert_eq!(done.duration_ms, 11 * 86_400_000);

    // The fund completes its task from its stream; the title's step opens.
    let task = h.step(StepKind::LoanSettled).task_id.clone();
    assert_eq!(task, "case-1/loan_settled.1");
    let events = h
        .run(complete(&task, Agency::ProvidentFund), &records)
        .unwrap();
    assert_eq!(kinds(&events), ["step completed", "step opened"]);
    assert_eq!(h.step(StepKind::TitleRegistered).state(), StepState::Open);

    // Housing registers the title to the buyer: the case completes.
    records[3] = title(2, &[(BUYER_A, 10_000)], false);
    h.later(1, date(2026, 2, 25));
    let events = h.run(changed(), &records).unwrap();
    assert_eq!(kinds(&events), ["step completed", "completed"]);
    assert_eq!(h.case().state(), CaseState::Completed);
    assert_eq!(h.case().duration_ms, 12 * 86_400_000);
    assert_eq!(h.case().sequence, h.events.len() as u64);
}

#[test]
fn a_configured_number_of_working_days_sets_the_steps_due_date() {
    let mut h = Harness::new();
    let configured = [("seller_household_moved_out".to_owned(), 1)].into();
    h.working_days = crate::cases::plan::WorkingDays::configured(&configured).unwrap();
    h.run(open(sale()), &at_opening()).unwrap();
    let household_step = h.step(StepKind::SellerHouseholdMovedOut);
    assert_eq!(household_step.working_days, 1);
    // One working day from Friday 2026-02-13: the make-up Saturday, the 14th.
    assert_eq!(
        civil(household_step.due_on.as_ref().unwrap()),
        Some(date(2026, 2, 14))
    );
    // The others keep their plan's number.
    assert_eq!(h.step(StepKind::LoanSettled).working_days, 5);
}

#[test]
fn every_command_applied_twice_changes_nothing_the_second_time() {
    let mut h = Harness::new();
    let records = at_opening();
    let opened = CaseCommand {
        command_id: "open".into(),
        case_id: CASE.into(),
        at: Some(h.now.into()),
        body: Some(open(sale())),
    };
    h.replay(&opened, &records).unwrap();
    assert!(
        h.replay(&opened, &records).unwrap().is_empty(),
        "opened once"
    );
    let task = h.step(StepKind::LoanSettled).task_id.clone();
    let completion = CaseCommand {
        command_id: "done".into(),
        case_id: CASE.into(),
        at: Some(h.now.into()),
        body: Some(complete(&task, Agency::ProvidentFund)),
    };
    assert_eq!(h.replay(&completion, &records).unwrap().len(), 1);
    let before = h.case().clone();
    assert!(h.replay(&completion, &records).unwrap().is_empty());
    assert!(h.run(changed(), &records).unwrap().is_empty());
    assert_eq!(h.case(), &before);
}

#[test]
fn only_the_steps_agency_completes_its_task_and_unknown_cases_and_tasks_are_refused() {
    let mut h = Harness::new();
    assert_eq!(h.run(changed(), &[]), Err(Refusal::NoSuchCase));
    h.run(open(sale()), &at_opening()).unwrap();
    let task = h.step(StepKind::LoanSettled).task_id.clone();
    assert_eq!(
        h.run(complete(&task, Agency::Housing), &[]),
        Err(Refusal::WrongAgency {
            owner: "provident-fund",
            caller: "housing"
        })
    );
    assert_eq!(
        h.run(complete("case-1/nothing.1", Agency::Housing), &[]),
        Err(Refusal::NoSuchTask)
    );
    assert_eq!(
        h.run(open(CaseParams::default()), &[]).map(|e| e.len()),
        Ok(0),
        "an opened case is not opened again"
    );
    let mut fresh = Harness::new();
    assert_eq!(
        fresh.run(open(CaseParams::default()), &[]),
        Err(Refusal::NoKind)
    );
}

#[test]
fn a_rejection_says_what_is_needed_and_a_later_completion_clears_it() {
    let mut h = Harness::new();
    let records = at_opening();
    h.run(open(sale()), &records).unwrap();
    let task = h.step(StepKind::LoanSettled).task_id.clone();
    let reject = case_command::Body::RejectTask(proto::RejectTaskCommand {
        task_id: task.clone(),
        agency: Agency::ProvidentFund as i32,
        reason: "the borrower must repay 10 fen first".into(),
    });
    assert_eq!(kinds(&h.run(reject, &records).unwrap()), ["step rejected"]);
    assert_eq!(h.case().state(), CaseState::NeedsAction);
    assert_eq!(
        h.case().waiting_for,
        "loan_settled (provident-fund): the borrower must repay 10 fen first"
    );
    h.run(complete(&task, Agency::ProvidentFund), &records)
        .unwrap();
    assert_eq!(h.case().state(), CaseState::Open);
    assert!(h.case().waiting_for.is_empty());
}

#[test]
fn a_record_change_that_takes_back_a_proof_reopens_the_step_with_a_new_task() {
    let mut h = Harness::new();
    let mut records = at_opening();
    records[1] = loan_event("l-1", 2, SELLER_A, LoanStatus::Settled, 0);
    h.run(open(sale()), &records).unwrap();
    assert_eq!(h.step(StepKind::LoanSettled).state(), StepState::Done);
    assert!(
        h.step(StepKind::LoanSettled).task_id.is_empty(),
        "never a task"
    );

    // A new loan on the unit: the step is open again, as a task for the fund.
    records.push(loan_event("l-2", 1, SELLER_A, LoanStatus::Repaying, 5));
    let events = h.run(changed(), &records).unwrap();
    assert_eq!(kinds(&events), ["step reopened"]);
    let step = h.step(StepKind::LoanSettled);
    assert_eq!(
        (step.state(), step.task_id.as_str()),
        (StepState::Open, "case-1/loan_settled.1")
    );
    assert!(step.completed_by.is_none());
}

#[test]
fn an_overdue_step_escalates_once_and_cancellation_drops_what_is_left() {
    let mut h = Harness::new();
    let records = at_opening();
    h.run(open(sale()), &records).unwrap();
    let check = || case_command::Body::CheckDeadlines(proto::CheckDeadlinesCommand {});
    // Due 2026-02-27 (see above): still in time that day, overdue the next working day.
    h.later(14, date(2026, 2, 27));
    assert!(h.run(check(), &records).unwrap().is_empty());
    h.later(3, date(2026, 3, 2));
    assert_eq!(
        kinds(&h.run(check(), &records).unwrap()),
        ["step overdue", "step overdue"]
    );
    assert!(
        h.run(check(), &records).unwrap().is_empty(),
        "escalated once"
    );
    assert!(h.step(StepKind::LoanSettled).overdue);

    let cancel = case_command::Body::Cancel(proto::CancelCaseCommand {
        reason: "the buyer withdrew".into(),
        by: "housing/transfer-window".into(),
    });
    assert_eq!(kinds(&h.run(cancel, &records).unwrap()), ["cancelled"]);
    assert_eq!(h.case().state(), CaseState::Cancelled);
    assert_eq!(h.step(StepKind::SaleContractFiled).state(), StepState::Done);
    assert_eq!(h.step(StepKind::LoanSettled).state(), StepState::Dropped);
    assert!(
        h.run(check(), &records).unwrap().is_empty(),
        "a closed case stays closed"
    );
}

#[test]
fn folding_the_events_again_gives_the_same_case() {
    let mut h = Harness::new();
    let records = at_opening();
    h.run(open(sale()), &records).unwrap();
    let task = h.step(StepKind::LoanSettled).task_id.clone();
    h.run(complete(&task, Agency::ProvidentFund), &records)
        .unwrap();
    let folded = h.events.iter().fold(None, |case, e| Some(apply(case, e)));
    assert_eq!(folded.as_ref(), h.case.as_ref());
}

/// The race the engine must not lose: a sale opened before the police's record of the
/// seller's household arrives. No record is no proof, so the household step is public
/// security's task and the title waits; when a proof is later taken back, the title's
/// step goes back to pending and its task is withdrawn.
///
/// Opens that sale, then lets the seller's household record arrive and change through
/// `statuses` (versions 1, 2, ...), one record change each. Returns the case, the records
/// it last read and the events of the last command.
fn household_record_after_opening(
    statuses: &[HouseholdStatus],
) -> (Harness, Vec<RecordEvent>, Vec<CaseEvent>) {
    let mut h = Harness::new();
    let settled = loan_event("l-1", 2, SELLER_A, LoanStatus::Settled, 0);
    let mut records = vec![at_opening()[2].clone(), at_opening()[3].clone(), settled];
    let mut events = h.run(open(sale()), &records).unwrap();
    for (version, status) in (1..).zip(statuses) {
        let record = household("h-1", version, SELLER_A, UNIT_ADDRESS, UNIT, *status);
        records.truncate(3);
        records.push(record);
        events = h.run(changed(), &records).unwrap();
    }
    (h, records, events)
}

/// See [`household_record_after_opening`]: no record is no proof.
#[test]
fn a_sale_opened_before_the_household_record_makes_the_household_a_task() {
    let (h, _, events) = household_record_after_opening(&[]);
    assert_eq!(
        kinds(&events),
        ["opened", "step completed", "step completed", "step opened"]
    );
    let household_step = h.step(StepKind::SellerHouseholdMovedOut);
    assert_eq!(
        household_step.state(),
        StepState::Open,
        "unknown, not moved out"
    );
    assert_eq!(
        household_step.task_id,
        "case-1/seller_household_moved_out.1"
    );
    assert_eq!(
        h.step(StepKind::TitleRegistered).state(),
        StepState::Pending
    );
}

/// See [`household_record_after_opening`]: the police's record arrives, the seller is
/// registered at the flat. Nothing moves.
#[test]
fn a_household_record_at_the_flat_arriving_after_opening_moves_nothing() {
    let (h, _, events) = household_record_after_opening(&[HouseholdStatus::Registered]);
    assert!(events.is_empty());
    assert_eq!(
        h.step(StepKind::TitleRegistered).state(),
        StepState::Pending
    );
}

/// See [`household_record_after_opening`]: moved out, the record proves the step, and
/// only now does the title open.
#[test]
fn the_title_opens_only_once_the_household_record_proves_the_seller_moved_out() {
    use HouseholdStatus::{MovedOut, Registered};
    let (h, _, events) = household_record_after_opening(&[Registered, MovedOut]);
    assert_eq!(kinds(&events), ["step completed", "step opened"]);
    let title_task = h.step(StepKind::TitleRegistered).task_id.clone();
    assert_eq!(title_task, "case-1/title_registered.1");
}

/// See [`household_record_after_opening`]: registered at the flat again, the household
/// step reopens and pulls the title back to pending, its task withdrawn; the withdrawn
/// task completes nothing.
#[test]
fn a_household_proof_taken_back_pulls_the_title_back_and_withdraws_its_task() {
    use HouseholdStatus::{MovedOut, Registered};
    let (mut h, records, events) =
        household_record_after_opening(&[Registered, MovedOut, Registered]);
    let title_task = "case-1/title_registered.1";
    assert_eq!(kinds(&events), ["step reopened", "step pulled back"]);
    let Some(case_event::Body::StepPulledBack(back)) = &events[1].body else {
        panic!("{events:?}")
    };
    assert_eq!(back.withdrawn_task_id, title_task);
    assert_eq!(back.reason, "seller_household_moved_out is no longer done");
    let title_step = h.step(StepKind::TitleRegistered);
    assert_eq!(title_step.state(), StepState::Pending);
    assert!(title_step.task_id.is_empty() && title_step.due_on.is_none());
    assert_eq!(
        h.run(complete(title_task, Agency::Housing), &records),
        Err(Refusal::NoSuchTask)
    );
    assert_ne!(h.case().state(), CaseState::Completed);
}

/// See [`household_record_after_opening`]: moved out for good, the title opens again, as
/// a new task, and the events fold to the same case.
#[test]
fn moved_out_for_good_the_title_opens_again_as_a_new_task() {
    use HouseholdStatus::{MovedOut, Registered};
    let (h, _, events) =
        household_record_after_opening(&[Registered, MovedOut, Registered, MovedOut]);
    assert_eq!(kinds(&events), ["step completed", "step opened"]);
    assert_eq!(
        h.step(StepKind::TitleRegistered).task_id,
        "case-1/title_registered.2"
    );
    let folded = h.events.iter().fold(None, |case, e| Some(apply(case, e)));
    assert_eq!(folded.as_ref(), h.case.as_ref());
}

/// A step is proved only once the steps it comes after are done: a title already naming
/// the buyers does not complete the case while the seller is still registered at the flat.
#[test]
fn a_record_does_not_prove_a_step_whose_predecessors_are_not_done() {
    let mut h = Harness::new();
    let mut records = at_opening();
    records[1] = loan_event("l-1", 2, SELLER_A, LoanStatus::Settled, 0);
    records[3] = title(2, &[(BUYER_A, 10_000)], false);
    h.run(open(sale()), &records).unwrap();
    assert_eq!(
        h.step(StepKind::TitleRegistered).state(),
        StepState::Pending
    );
    assert_eq!(h.case().state(), CaseState::Open);
    // Once the household is out, the title's record proves its step at once.
    records[0] = household(
        "h-1",
        2,
        SELLER_A,
        UNIT_ADDRESS,
        UNIT,
        HouseholdStatus::MovedOut,
    );
    let events = h.run(changed(), &records).unwrap();
    assert_eq!(
        kinds(&events),
        ["step completed", "step completed", "completed"]
    );
}

/// A record change whose command was never delivered (the bridge could not send it) is
/// noticed by the periodic deadline check: a new loan on the unit reopens the loan step
/// and pulls the title back.
#[test]
fn the_deadline_check_also_reopens_what_the_records_took_back() {
    let mut h = Harness::new();
    let mut records = at_opening();
    records[0] = household(
        "h-1",
        2,
        SELLER_A,
        UNIT_ADDRESS,
        UNIT,
        HouseholdStatus::MovedOut,
    );
    records[1] = loan_event("l-1", 2, SELLER_A, LoanStatus::Settled, 0);
    h.run(open(sale()), &records).unwrap();
    assert_eq!(h.step(StepKind::TitleRegistered).state(), StepState::Open);
    records.push(loan_event("l-2", 1, SELLER_A, LoanStatus::Repaying, 5));
    let check = case_command::Body::CheckDeadlines(proto::CheckDeadlinesCommand {});
    let events = h.run(check, &records).unwrap();
    assert_eq!(kinds(&events), ["step reopened", "step pulled back"]);
    assert_eq!(h.step(StepKind::LoanSettled).state(), StepState::Open);
    assert!(!h.step(StepKind::LoanSettled).overdue, "a fresh due date");
    assert_eq!(
        h.step(StepKind::TitleRegistered).state(),
        StepState::Pending
    );
}

#[path = "case_objection_tests.rs"]
mod objection;
