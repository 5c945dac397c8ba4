//! `WatchDataAccesses`: the citizen is told of each access to their data as the access
//! index takes it in, not only able to ask (`ListDataAccesses`).
//!
//! The watch reads the person's arrival log in the index (see
//! `crate::resolver::access`), in the order accesses were indexed, so an access indexed
//! late (its chain read after a later one's) is still sent. Each notice carries a cursor:
//! the arrival id, with a check digest over the person and the id, in hex. A watch asked
//! to start after a cursor sends exactly what was indexed after it; one that names none
//! starts from the last access indexed when it opened. A cursor that does not check out
//! (mangled, made up, another person's) is `INVALID_ARGUMENT` on `after_cursor`.

use std::time::Duration;

use tokio::time::Instant;

use super::person_token::TokenKind;
use super::{Lookup, Queries, QueryError, parse_person, parse_purpose};
use crate::domain::ResidentId;
use crate::identity::Caller;
use crate::proto;
use crate::records::Violations;
use crate::resolver::access::{AccessIndex, ArrivalId, MAX_ARRIVALS_PER_READ};
use crate::resolver::policy::Purpose;

/// How notice cursors are made and checked.
const CURSORS: TokenKind = TokenKind {
    domain: b"govlink WatchDataAccesses cursor\0",
    version: 1,
};
/// The longest cursor this service accepts, in characters (it hands out 50).
pub const MAX_CURSOR_CHARS: usize = 100;

/// A checked `WatchDataAccesses` request.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchRequest {
    /// Whose accesses.
    pub person: ResidentId,
    /// Why they are watched.
    pub purpose: Purpose,
    /// Where the watch starts; `None` for from now.
    pub after: Option<ArrivalId>,
}

/// An open watch of one person's accesses: where it is in their arrival log.
pub struct Watch {
    index: AccessIndex,
    person: ResidentId,
    /// The last arrival read (sent, or passed over as it left the index).
    after: ArrivalId,
    retention: Duration,
}

impl Watch {
    /// The notices of the accesses indexed since the last call (at most
    /// [`MAX_ARRIVALS_PER_READ`]), and whether more may be waiting already (the read was
    /// full).
    pub async fn poll(&mut self) -> Result<(Vec<proto::DataAccessNotice>, bool), QueryError> {
        let arrivals = self
            .index
            .arrivals(
                &self.person,
                self.after,
                MAX_ARRIVALS_PER_READ,
                self.retention,
            )
            .await?;
        let full = arrivals.len() >= MAX_ARRIVALS_PER_READ;
        let mut notices = Vec::with_capacity(arrivals.len());
        for arrival in arrivals {
            self.after = arrival.id;
            if let Some(access) = arrival.access {
                notices.push(proto::DataAccessNotice {
                    access: Some(access),
                    cursor: notice_cursor(&self.person, arrival.id),
                });
            }
        }
        Ok((notices, full))
    }
}

impl Queries {
    /// `WatchDataAccesses`: decided and audited as `ListDataAccesses` is (the citizen's
    /// own view); the watch of an admitted request, which `admit` may refuse once the
    /// person is known (before anything is decided or audited).
    pub async fn watch_data_accesses<S>(
        &self,
        caller: &Caller,
        r: proto::WatchDataAccessesRequest,
        admit: impl FnOnce(&ResidentId) -> Result<S, QueryError>,
        deadline: Instant,
    ) -> Result<(Watch, S), QueryError> {
        let request = parse_watch_data_accesses(&r)?;
        let slot = admit(&request.person)?;
        let person = &request.person;
        let lookup = Lookup::of_person(
            caller,
            "WatchDataAccesses",
            request.purpose,
            String::new(),
            person,
        );
        let access = self.own_view(&lookup, deadline).await?;
        self.audit_allowed(&lookup, &access, &[], &[], deadline)
            .await?;
        let after = match request.after {
            Some(after) => after,
            None => self.accesses.last_arrival(person).await?,
        };
        let watch = Watch {
            index: self.accesses.clone(),
            person: request.person,
            after,
            retention: self.access_retention,
        };
        Ok((watch, slot))
    }
}

/// Checks a `WatchDataAccesses` request field by field: the person, the purpose and
/// where to start, or every broken rule by field.
pub fn parse_watch_data_accesses(
    r: &proto::WatchDataAccessesRequest,
) -> Result<WatchRequest, Violations> {
    let mut v = Violations::default();
    let person = parse_person(&r.person_id, "person_id", &mut v);
    let purpose = parse_purpose(&r.purpose, &mut v);
    let after = parse_cursor(&r.after_cursor, person.as_ref(), &mut v);
    match (person, purpose) {
        (Some(person), Some(purpose)) if v.is_empty() => Ok(WatchRequest {
            person,
            purpose,
            after,
        }),
        _ => Err(v),
    }
}

/// The cursor of the notice of `person`'s access logged at `id`.
pub fn notice_cursor(person: &ResidentId, id: ArrivalId) -> String {
    CURSORS.encode(person, &id.to_bytes())
}

/// The arrival id a cursor carries; `None` for an empty one. Without a valid person only
/// the cursor's shape is checked (the person's own violation says the rest).
fn parse_cursor(
    cursor: &str,
    person: Option<&ResidentId>,
    v: &mut Violations,
) -> Option<ArrivalId> {
    if cursor.is_empty() {
        return None;
    }
    if cursor.len() > MAX_CURSOR_CHARS {
        v.add_too_long(
            "after_cursor",
            format!(
                "must be at most {MAX_CURSOR_CHARS} characters: pass a notice's cursor as \
                 it was sent"
            ),
        );
        return None;
    }
    let id = CURSORS
        .decode(cursor, person)
        .and_then(|position| ArrivalId::from_bytes(&position));
    if id.is_none() {
        v.add(
            "after_cursor",
            "not a cursor of this person's notices: pass the cursor of the last notice \
             received, as it was, with the same person_id (or none to start from now)",
        );
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(first17: &str) -> ResidentId {
        ResidentId::completing(first17)
    }

    fn request(person: &ResidentId, after_cursor: &str) -> proto::WatchDataAccessesRequest {
        proto::WatchDataAccessesRequest {
            person_id: person.as_str().into(),
            purpose: "self-view".into(),
            after_cursor: after_cursor.into(),
        }
    }

    fn refused_fields(r: &proto::WatchDataAccessesRequest) -> Vec<String> {
        parse_watch_data_accesses(r)
            .unwrap_err()
            .iter()
            .map(|v| v.field.clone())
            .collect()
    }

    #[test]
    fn a_cursor_brings_back_its_id_for_the_same_person_only() {
        let (alice, bea) = (person("11010519800312001"), person("31010419900521002"));
        let id = ArrivalId {
            ms: 1_765_000_000_123,
            seq: 2,
        };
        let cursor = notice_cursor(&alice, id);
        assert!(cursor.len() <= MAX_CURSOR_CHARS);
        let parsed = parse_watch_data_accesses(&request(&alice, &cursor)).unwrap();
        assert_eq!(parsed.after, Some(id));
        assert_eq!(parsed.person, alice);
        let from_now = parse_watch_data_accesses(&request(&alice, "")).unwrap();
        assert_eq!(from_now.after, None);
        assert_eq!(refused_fields(&request(&bea, &cursor)), ["after_cursor"]);
    }

    #[test]
    fn a_cursor_that_is_not_one_is_refused_naming_after_cursor() {
        let alice = person("11010519800312001");
        let cursor = notice_cursor(&alice, ArrivalId { ms: 5, seq: 1 });
        let mut flipped = cursor.clone().into_bytes();
        flipped[6] = if flipped[6] == b'0' { b'1' } else { b'0' };
        // A page token of ListDataAccesses is no cursor of the watch.
        let page = super::super::page_token(
            &alice,
            &crate::resolver::access::Cursor::from_bytes(&[[0; 8].as_slice(), &[1; 17]].concat())
                .unwrap(),
        );
        for bad in [
            "not hex".to_owned(),
            "abc".to_owned(),
            cursor[..cursor.len() - 2].to_owned(),
            String::from_utf8(flipped).unwrap(),
            format!("02{}", &cursor[2..]),
            "00".repeat(25),
            page,
        ] {
            assert_eq!(
                refused_fields(&request(&alice, &bad)),
                ["after_cursor"],
                "{bad}"
            );
        }
        let long = request(&alice, &"0".repeat(MAX_CURSOR_CHARS + 1));
        assert!(parse_watch_data_accesses(&long).unwrap_err().too_long());
        let mut all = request(&alice, "zz");
        all.person_id = "123".into();
        all.purpose = String::new();
        assert_eq!(
            refused_fields(&all),
            ["person_id", "purpose", "after_cursor"]
        );
    }
}
