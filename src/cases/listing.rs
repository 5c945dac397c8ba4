//! How `ListCases` finds cases: it reads the narrowest list the store keeps that its
//! filters allow (a person's cases, an agency's work list, a kind's, a state's; every
//! case when none applies), newest first, a page at a time, each page's views in one
//! round trip; it filters the views again (a list entry is a hint, see
//! `store/index.rs`) and stops at `limit`. At most [`SCAN`] entries of the list are
//! looked at, whatever the filters: the bound a call's work has.

use super::store::{CaseList, CaseStore, CaseStoreError};
use crate::proto::{Agency, Case, CaseKind, CaseParams, CaseState, ListCasesRequest, case_params};

/// The most entries of a list one `ListCases` looks at, newest first.
pub(crate) const SCAN: usize = 10_000;
/// Entries read (and views loaded) per round trip.
const PAGE: usize = 200;

/// What a listing found.
#[derive(Debug)]
pub(crate) struct Found<A> {
    /// The cases, newest first, each with what `admit` said of it.
    pub(crate) cases: Vec<(Case, A)>,
    /// More cases matched than the limit, or [`SCAN`] entries were looked at before the
    /// list's end.
    pub(crate) truncated: bool,
}

/// At most `limit` cases passing the filters of `r` and `admit` (the caller's grant,
/// which says what it shows), newest first; `lists_current` says whether the store
/// keeps the lists by person, work list, kind and state for every case (otherwise only
/// the list of every case is read).
pub(crate) async fn list<A>(
    store: &CaseStore,
    r: &ListCasesRequest,
    limit: usize,
    lists_current: bool,
    admit: impl Fn(&Case) -> Option<A>,
) -> Result<Found<A>, CaseStoreError> {
    let list = narrowest(store, r, lists_current).await?;
    let mut found = Found {
        cases: Vec::new(),
        truncated: false,
    };
    let mut start = 0;
    // A case re-listed while the call pages (it moved up the list) is met again on a
    // later page: listed once.
    let mut seen = std::collections::HashSet::new();
    loop {
        let count = PAGE.min(SCAN - start);
        let (ids, more) = store.list_page(&list, start, count).await?;
        start += ids.len();
        for case in store.views(&ids).await?.into_iter().flatten() {
            if !matches_filter(&case, r) || seen.contains(&case.case_id) {
                continue;
            }
            let Some(admitted) = admit(&case) else {
                continue;
            };
            if found.cases.len() == limit {
                found.truncated = true;
                return Ok(found);
            }
            seen.insert(case.case_id.clone());
            found.cases.push((case, admitted));
        }
        if !more {
            return Ok(found);
        }
        if start >= SCAN {
            found.truncated = true;
            return Ok(found);
        }
    }
}

/// The smallest list that holds every case the filters of `r` pass: a person's when one
/// is asked for (a handful of cases); otherwise the smallest of those the filters name,
/// by their sizes now (one round trip).
async fn narrowest(
    store: &CaseStore,
    r: &ListCasesRequest,
    lists_current: bool,
) -> Result<CaseList, CaseStoreError> {
    if !lists_current {
        return Ok(CaseList::All);
    }
    if !r.person_id.is_empty() {
        return Ok(CaseList::Person(r.person_id.to_ascii_uppercase()));
    }
    let mut lists = Vec::new();
    if let Ok(agency) = Agency::try_from(r.open_steps_of)
        && agency != Agency::Unspecified
    {
        lists.push(CaseList::OpenStepsOf(agency));
    }
    if let Ok(kind) = CaseKind::try_from(r.kind)
        && kind != CaseKind::Unspecified
    {
        lists.push(CaseList::Kind(kind));
    }
    if let Ok(state) = CaseState::try_from(r.state)
        && state != CaseState::Unspecified
    {
        lists.push(CaseList::State(state));
    }
    match lists.len() {
        0 => Ok(CaseList::All),
        1 => Ok(lists.remove(0)),
        _ => {
            let sizes = store.list_sizes(&lists).await?;
            Ok(lists
                .into_iter()
                .zip(sizes)
                .min_by_key(|(_, size)| *size)
                .map_or(CaseList::All, |(list, _)| list))
        }
    }
}

/// The resident IDs a case names (its parties).
pub(crate) fn parties(params: Option<&CaseParams>) -> Vec<&String> {
    match params.and_then(|p| p.kind.as_ref()) {
        Some(case_params::Kind::PropertyTransfer(p)) => {
            p.seller_ids.iter().chain(&p.buyer_ids).collect()
        }
        Some(case_params::Kind::SocialSecurityTransfer(p)) => vec![&p.person_id],
        Some(case_params::Kind::ProvidentFundTransfer(p)) => vec![&p.person_id],
        Some(case_params::Kind::HouseholdMove(p)) => vec![&p.person_id],
        Some(case_params::Kind::ProvidentFundLoan(p)) => vec![&p.person_id],
        Some(case_params::Kind::DataObjection(p)) => vec![&p.person_id],
        None => Vec::new(),
    }
}

/// Whether `case` passes every filter set in `r`.
fn matches_filter(case: &Case, r: &ListCasesRequest) -> bool {
    let waiting = |s: &crate::proto::Step| {
        matches!(
            s.state(),
            crate::proto::StepState::Open | crate::proto::StepState::Rejected
        )
    };
    (r.kind == 0 || case.kind == r.kind)
        && (r.state == 0 || case.state == r.state)
        && (r.open_steps_of == 0
            || case
                .steps
                .iter()
                .any(|s| waiting(s) && s.agency == r.open_steps_of))
        && (!r.overdue_only || case.steps.iter().any(|s| waiting(s) && s.overdue))
        && (r.person_id.is_empty() || names_person(case, &r.person_id))
}

/// Whether the case's parameters name `person`.
fn names_person(case: &Case, person: &str) -> bool {
    parties(case.params.as_ref())
        .iter()
        .any(|id| id.eq_ignore_ascii_case(person))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cases::store::MemoryCaseStore;
    use crate::proto::{HouseholdMoveParams, Step, StepState};

    /// A store of `count` open household moves, the `i`-th opened at second `i` and
    /// naming person `i % 3`.
    async fn store_of(count: usize) -> CaseStore {
        let store = CaseStore::Memory(MemoryCaseStore::new());
        for i in 0..count {
            let case = Case {
                case_id: format!("c{i}"),
                sequence: 1,
                kind: CaseKind::HouseholdMove as i32,
                state: CaseState::Open as i32,
                opened_at: Some(prost_types::Timestamp {
                    seconds: i64::try_from(i).unwrap(),
                    nanos: 0,
                }),
                params: Some(CaseParams {
                    kind: Some(case_params::Kind::HouseholdMove(HouseholdMoveParams {
                        person_id: format!("P{}", i % 3),
                        to_region_code: String::new(),
                    })),
                }),
                steps: vec![Step {
                    agency: Agency::PublicSecurity as i32,
                    state: StepState::Open as i32,
                    ..Default::default()
                }],
                ..Default::default()
            };
            assert!(store.commit(0, &case, &[]).await.unwrap());
            store.index(&case).await.unwrap();
        }
        store
    }

    fn ids(found: &Found<()>) -> Vec<&str> {
        found
            .cases
            .iter()
            .map(|(c, _)| c.case_id.as_str())
            .collect()
    }

    #[tokio::test]
    async fn truncated_says_whether_more_matched_than_the_limit() {
        let store = store_of(9).await;
        let person = ListCasesRequest {
            person_id: "p1".into(),
            ..Default::default()
        };
        let found = list(&store, &person, 2, true, |_| Some(())).await.unwrap();
        assert_eq!(ids(&found), ["c7", "c4"]);
        assert!(found.truncated);
        let found = list(&store, &person, 3, true, |_| Some(())).await.unwrap();
        assert_eq!(ids(&found), ["c7", "c4", "c1"]);
        assert!(!found.truncated, "exactly the limit matched");
        // A case the grant does not admit is neither listed nor counted.
        let found = list(&store, &person, 2, true, |c| {
            (c.case_id != "c4").then_some(())
        })
        .await
        .unwrap();
        assert_eq!(ids(&found), ["c7", "c1"]);
        assert!(!found.truncated);
    }

    #[tokio::test]
    async fn at_most_the_scan_bound_is_looked_at_and_reaching_it_is_said() {
        // Matching nothing, every entry of the list of every case is looked at.
        let nobody = ListCasesRequest {
            overdue_only: true,
            ..Default::default()
        };
        let exactly = store_of(SCAN).await;
        let found = list(&exactly, &nobody, 100, true, |_| Some(()))
            .await
            .unwrap();
        assert!(found.cases.is_empty());
        assert!(!found.truncated, "the list ended at the bound");
        exactly
            .index(&Case {
                case_id: "oldest".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        let found = list(&exactly, &nobody, 100, true, |_| Some(()))
            .await
            .unwrap();
        assert!(found.truncated, "one more case lies past the bound");
    }

    #[tokio::test]
    async fn an_entry_left_behind_by_a_case_that_moved_on_is_filtered_out() {
        let store = store_of(3).await;
        // c1's step is done, committed but not indexed yet (a crash in between): still on
        // the agency's work list, but not listed as waiting there.
        let mut moved = store.load("c1").await.unwrap().case.unwrap();
        moved.sequence = 2;
        moved.steps[0].state = StepState::Done as i32;
        assert!(store.commit(1, &moved, &[]).await.unwrap());
        let work = ListCasesRequest {
            open_steps_of: Agency::PublicSecurity as i32,
            ..Default::default()
        };
        let found = list(&store, &work, 10, true, |_| Some(())).await.unwrap();
        assert_eq!(ids(&found), ["c2", "c0"]);
    }

    #[tokio::test]
    async fn a_case_met_again_on_a_later_page_is_listed_once() {
        let store = store_of(PAGE + 5).await;
        let mut newest = store.load("c0").await.unwrap().case.unwrap();
        newest.case_id = "opened-while-listing".into();
        newest.opened_at = Some(prost_types::Timestamp {
            seconds: 10_000,
            nanos: 0,
        });
        // A case opened while the first page is looked at moves every entry one place
        // down: the first page's last case is the second page's first.
        let opened = std::sync::atomic::AtomicBool::new(false);
        let every = ListCasesRequest::default();
        let found = list(&store, &every, 1_000, true, |_| {
            if !opened.swap(true, std::sync::atomic::Ordering::Relaxed) {
                futures::executor::block_on(store.index(&newest)).unwrap();
            }
            Some(())
        })
        .await
        .unwrap();
        let listed = ids(&found);
        let unique: std::collections::HashSet<_> = listed.iter().collect();
        assert_eq!(unique.len(), listed.len(), "{listed:?}");
        assert_eq!(listed.len(), PAGE + 5);
    }

    #[tokio::test]
    async fn a_store_whose_lists_are_not_current_is_read_by_every_case() {
        let store = store_of(6).await;
        let work = ListCasesRequest {
            open_steps_of: Agency::PublicSecurity as i32,
            person_id: "P2".into(),
            ..Default::default()
        };
        let found = list(&store, &work, 10, false, |_| Some(())).await.unwrap();
        assert_eq!(ids(&found), ["c5", "c2"]);
        let found = list(&store, &work, 10, true, |_| Some(())).await.unwrap();
        assert_eq!(ids(&found), ["c5", "c2"]);
    }
}
