//! What indexing a case changes, the same for every store: the sets that find the cases
//! a record change concerns, the tasks no longer to deliver, and the lists `ListCases`
//! reads newest first (every case; a person's; an agency's work list; a kind's; a
//! state's).
//!
//! A list entry is only a hint: `ListCases` loads the view and filters it again, so an
//! entry left behind (a case indexed in one state, then moved on before its next
//! indexing) shows nothing wrong, and indexing a case again puts every entry it lacks
//! back (the engine indexes after every commit, and again before its next command of a
//! case whose outbox was left over).

use crate::cases::listing::parties;
use crate::proto::{Agency, Case, CaseKind, CaseState, StepState};
use crate::records::{AGENCIES, agency_slug};

/// A list of cases, newest first by opening time, that `ListCases` may read instead of
/// every case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CaseList {
    /// Every case.
    All,
    /// The cases whose parameters name this resident ID (uppercase).
    Person(String),
    /// The cases with an open or rejected step of this agency: its work list.
    OpenStepsOf(Agency),
    /// The cases of this kind.
    Kind(CaseKind),
    /// The cases in this state.
    State(CaseState),
}

impl CaseList {
    /// The list's name under the store prefix. A person's list carries the person's hash
    /// tag, as the person's records and audit index do.
    pub(super) fn key(&self) -> String {
        match self {
            CaseList::All => "cases:all".to_owned(),
            CaseList::Person(id) => format!("cases:person:{{p:{id}}}"),
            CaseList::OpenStepsOf(agency) => format!("cases:open-steps:{}", agency_slug(*agency)),
            CaseList::Kind(kind) => format!("cases:kind:{}", kind.as_str_name()),
            CaseList::State(state) => format!("cases:state:{}", state.as_str_name()),
        }
    }
}

/// The states a case may be listed in.
const STATES: [CaseState; 4] = [
    CaseState::Open,
    CaseState::NeedsAction,
    CaseState::Completed,
    CaseState::Cancelled,
];

/// What indexing a case changes.
#[derive(Debug, Clone, PartialEq)]
pub struct Index {
    pub(super) case_id: String,
    /// Whether the case is still open (listed), or closed (taken off every list).
    pub(super) open: bool,
    /// The subjects whose records its plan reads.
    pub(super) subjects: Vec<String>,
    /// Tasks no longer to deliver: their step is no longer open, or the case closed.
    pub(super) undeliverable: Vec<(Agency, String)>,
    /// When it was opened, ms since the epoch: its place in every list.
    pub(super) opened_ms: i64,
    /// The lists it is in (every case's among them).
    pub(super) listed: Vec<CaseList>,
    /// The lists it has left or was never in, of those a case moves in and out of.
    pub(super) unlisted: Vec<CaseList>,
    /// An objection's record key and disputed version: disputed while `open`.
    pub(super) dispute: Option<(String, u64)>,
}

impl Index {
    /// How `case` is to be indexed as it stands.
    pub fn of(case: &Case) -> Index {
        let open = !matches!(case.state(), CaseState::Completed | CaseState::Cancelled);
        let subjects = crate::cases::plan::reads(&case.params.clone().unwrap_or_default())
            .into_iter()
            .map(|(subject, _)| subject.as_str().to_owned())
            .collect();
        let undeliverable = case
            .steps
            .iter()
            .filter(|s| {
                let deliverable =
                    open && matches!(s.state(), StepState::Open | StepState::Rejected);
                !s.task_id.is_empty() && !deliverable
            })
            .map(|s| (s.agency(), s.task_id.clone()))
            .collect();
        let (listed, unlisted) = lists_of(case);
        Index {
            case_id: case.case_id.clone(),
            open,
            subjects,
            undeliverable,
            opened_ms: case
                .opened_at
                .map_or(0, |t| t.seconds * 1000 + i64::from(t.nanos / 1_000_000)),
            listed,
            unlisted,
            dispute: match case.params.as_ref().and_then(|p| p.kind.as_ref()) {
                Some(crate::proto::case_params::Kind::DataObjection(o)) => {
                    Some((o.record_key.clone(), o.version))
                }
                _ => None,
            },
        }
    }
}

/// The lists `case` is in, and those of the lists a case moves in and out of (work
/// lists, states) it is not in.
fn lists_of(case: &Case) -> (Vec<CaseList>, Vec<CaseList>) {
    let mut listed = vec![CaseList::All, CaseList::Kind(case.kind())];
    let mut persons: Vec<String> = parties(case.params.as_ref())
        .into_iter()
        .map(|p| p.to_ascii_uppercase())
        .collect();
    persons.sort();
    persons.dedup();
    listed.extend(persons.into_iter().map(CaseList::Person));
    let mut unlisted = Vec::new();
    for agency in AGENCIES {
        let waiting = case.steps.iter().any(|s| {
            s.agency() == agency && matches!(s.state(), StepState::Open | StepState::Rejected)
        });
        let list = CaseList::OpenStepsOf(agency);
        if waiting { &mut listed } else { &mut unlisted }.push(list);
    }
    for state in STATES {
        let list = CaseList::State(state);
        if case.state() == state {
            &mut listed
        } else {
            &mut unlisted
        }
        .push(list);
    }
    (listed, unlisted)
}
