//! The seller told as it happens: the citizen portal watches the seller's data accesses
//! (`WatchDataAccesses`) from before the sale starts, and at its end the story shows what
//! the seller was told, one notice per use of their data.

use std::time::Duration;

use tonic::Streaming;

use super::{Demo, Resolver, expect};
use crate::proto::{self, Agency, DataAccessNotice};
use crate::records::agency_slug;

/// The requester service of the portal, whose own looks are not news to the seller.
const PORTAL_SERVICE: &str = "citizen-portal";
/// The uses of the seller's data the story waits to have been told of, at least: the
/// window's first check, its case opening and its watch of the case.
const EXPECTED: usize = 3;

/// Opens the portal's watch of `person`'s data accesses, from now.
pub(super) async fn watch(
    demo: &mut Demo<'_>,
    portal: &mut Resolver,
    person: &str,
) -> anyhow::Result<Streaming<DataAccessNotice>> {
    demo.step("The seller opens the citizen portal, which watches who uses their data:")?;
    let request = proto::WatchDataAccessesRequest {
        person_id: person.into(),
        purpose: "self-view".into(),
        after_cursor: String::new(),
    };
    let watch = portal.watch_data_accesses(request).await?.into_inner();
    writeln!(
        demo.out,
        "   watching (WatchDataAccesses); each notice carries a cursor to resume from"
    )?;
    Ok(watch)
}

/// How long the story waits for the expected uses to be told.
const EXPECTED_WITHIN: Duration = Duration::from_secs(30);
/// Once they were, how long a quiet watch is taken to have told everything so far (it
/// reads the index every 500 ms).
const QUIET: Duration = Duration::from_secs(2);

/// Shows what the watch told the seller: every use by others so far, waiting (bounded)
/// for the expected ones.
pub(super) async fn tell(
    demo: &mut Demo<'_>,
    watch: &mut Streaming<DataAccessNotice>,
) -> anyhow::Result<()> {
    demo.step("Meanwhile the portal told the seller each time their data was used:")?;
    let mut told = Vec::new();
    loop {
        let wait = if told.len() < EXPECTED {
            EXPECTED_WITHIN
        } else {
            QUIET
        };
        let Ok(next) = tokio::time::timeout(wait, watch.message()).await else {
            break;
        };
        let Some(notice) = next? else { break };
        let Some(access) = notice.access else {
            continue;
        };
        if access.requester_service != PORTAL_SERVICE {
            told.push(access);
        }
    }
    for a in &told {
        let agency = Agency::try_from(a.requester_agency).unwrap_or(Agency::Unspecified);
        let case = if a.case_id.is_empty() {
            String::new()
        } else {
            format!(" (case {})", a.case_id)
        };
        let sections = if a.sections.is_empty() {
            String::new()
        } else {
            format!(" — {}", a.sections.join(", "))
        };
        writeln!(
            demo.out,
            "   told: {}/{} used it for {}{case}: {}{sections}",
            agency_slug(agency),
            a.requester_service,
            a.purpose,
            a.method,
        )?;
    }
    expect(
        told.len() >= EXPECTED,
        "the seller should be told of the window's check, its case and its watch of the case",
    )
}
