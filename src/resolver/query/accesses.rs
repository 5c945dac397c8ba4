//! `ListDataAccesses`: the citizen's own view of who looked at their data, in pages.
//!
//! A page token is the place the previous page ended (the index's cursor), with a check
//! digest over the person and the cursor, in hex. It is opaque to callers; one that does
//! not check out (mangled, made up, or another person's) is `INVALID_ARGUMENT` on
//! `page_token`, never read as a place in someone's list.

use tokio::time::Instant;

use super::person_token::TokenKind;
use super::{Lookup, Queries, QueryError, parse_person, parse_purpose};
use crate::domain::ResidentId;
use crate::identity::Caller;
use crate::proto;
use crate::records::Violations;
use crate::resolver::access::Cursor;
use crate::resolver::policy::{Access, Purpose};

/// How page tokens are made and checked.
const PAGE_TOKENS: TokenKind = TokenKind {
    domain: b"govlink ListDataAccesses page\0",
    version: 1,
};
/// The most entries one `ListDataAccesses` page returns.
pub const MAX_ACCESSES: usize = 1000;
/// The longest page token this service hands out, in characters.
pub const MAX_PAGE_TOKEN_CHARS: usize = 600;

/// A checked `ListDataAccesses` request.
#[derive(Debug, Clone, PartialEq)]
pub struct DataAccessesRequest {
    /// Whose list.
    pub person: ResidentId,
    /// Why it is looked at.
    pub purpose: Purpose,
    /// The most entries of the page.
    pub limit: usize,
    /// Where the page starts; `None` for the first page.
    pub after: Option<Cursor>,
}

impl Queries {
    /// `ListDataAccesses`: the citizen's own view of who looked at their data. Only a
    /// self-only grant, used by the citizen it acts for, may read it.
    pub async fn data_accesses(
        &self,
        caller: &Caller,
        r: proto::ListDataAccessesRequest,
        deadline: Instant,
    ) -> Result<proto::ListDataAccessesResponse, QueryError> {
        let request = parse_data_accesses(&r)?;
        let (method, person) = ("ListDataAccesses", &request.person);
        let lookup = Lookup::of_person(caller, method, request.purpose, String::new(), person);
        let access = self.own_view(&lookup, deadline).await?;
        let (page, audited) = tokio::join!(
            self.accesses.page(
                person,
                request.after.as_ref(),
                request.limit,
                self.access_retention
            ),
            self.audit_allowed(&lookup, &access, &[], &[], deadline),
        );
        audited?;
        let page = page?;
        Ok(proto::ListDataAccessesResponse {
            accesses: page.accesses,
            kept_since: Some(page.complete_since.into()),
            next_page_token: page
                .next
                .as_ref()
                .map(|cursor| page_token(person, cursor))
                .unwrap_or_default(),
            truncated: page.next.is_some() || page.dropped,
        })
    }
}

impl Queries {
    /// The policy's decision on `lookup` of the citizen's own view of the trail
    /// (`ListDataAccesses`, `WatchDataAccesses`): only a self-only grant, used by the
    /// citizen it acts for, may read it; anything else is refused and audited.
    pub(super) async fn own_view(
        &self,
        lookup: &Lookup<'_>,
        deadline: Instant,
    ) -> Result<Access, QueryError> {
        let access = self.decide(lookup, &[], deadline).await?;
        if !access.self_only() {
            let reason = format!(
                "{} is the citizen's own view: the grant for {} with purpose {} \
                 (policy line {}) is not self-only",
                lookup.method,
                lookup.caller.requester,
                lookup.purpose,
                access.grant_line()
            );
            return Err(self.deny(lookup, reason, deadline).await);
        }
        Ok(access)
    }
}

/// Checks a `ListDataAccesses` request field by field: the person, the purpose, how many
/// entries to return and where to start, or every broken rule by field.
pub fn parse_data_accesses(
    r: &proto::ListDataAccessesRequest,
) -> Result<DataAccessesRequest, Violations> {
    let mut v = Violations::default();
    let person = parse_person(&r.person_id, "person_id", &mut v);
    let purpose = parse_purpose(&r.purpose, &mut v);
    let limit = match usize::try_from(r.limit) {
        Ok(0) => MAX_ACCESSES,
        Ok(n) if n <= MAX_ACCESSES => n,
        _ => {
            v.add(
                "limit",
                format!("must be at most {MAX_ACCESSES} (0 means {MAX_ACCESSES})"),
            );
            0
        }
    };
    let after = parse_page_token(&r.page_token, person.as_ref(), &mut v);
    match (person, purpose) {
        (Some(person), Some(purpose)) if v.is_empty() => Ok(DataAccessesRequest {
            person,
            purpose,
            limit,
            after,
        }),
        _ => Err(v),
    }
}

/// The token of the page after `cursor` in `person`'s list.
pub fn page_token(person: &ResidentId, cursor: &Cursor) -> String {
    PAGE_TOKENS.encode(person, cursor.as_bytes())
}

/// The cursor a page token carries; `None` for an empty token. Without a valid person
/// only the token's shape is checked (the person's own violation says the rest).
fn parse_page_token(
    token: &str,
    person: Option<&ResidentId>,
    v: &mut Violations,
) -> Option<Cursor> {
    if token.is_empty() {
        return None;
    }
    if token.len() > MAX_PAGE_TOKEN_CHARS {
        v.add_too_long(
            "page_token",
            format!(
                "must be at most {MAX_PAGE_TOKEN_CHARS} characters: pass next_page_token as \
                 it was returned"
            ),
        );
        return None;
    }
    let cursor = PAGE_TOKENS
        .decode(token, person)
        .and_then(|position| Cursor::from_bytes(&position));
    if cursor.is_none() {
        v.add(
            "page_token",
            "not a page token of this person's list: pass next_page_token as it was \
             returned, with the same person_id (or none for the first page)",
        );
    }
    cursor
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(first17: &str) -> ResidentId {
        ResidentId::completing(first17)
    }

    fn request(person: &ResidentId, page_token: &str) -> proto::ListDataAccessesRequest {
        proto::ListDataAccessesRequest {
            person_id: person.as_str().into(),
            purpose: "self-view".into(),
            limit: 0,
            page_token: page_token.into(),
        }
    }

    fn refused_fields(r: &proto::ListDataAccessesRequest) -> Vec<String> {
        parse_data_accesses(r)
            .unwrap_err()
            .iter()
            .map(|v| v.field.clone())
            .collect()
    }

    #[test]
    fn a_token_brings_back_its_cursor_for_the_same_person_only() {
        let (alice, bea) = (person("11010519800312001"), person("31010419900521002"));
        let cursor = Cursor::from_bytes(&[
            0, 0, 1, 2, 3, 4, 5, 6, 0, 2, b'c', b'1', 0, 0, 0, 0, 0, 0, 0, 9,
        ])
        .unwrap();
        let token = page_token(&alice, &cursor);
        let parsed = parse_data_accesses(&request(&alice, &token)).unwrap();
        assert_eq!(parsed.after, Some(cursor));
        assert_eq!(parsed.limit, MAX_ACCESSES);
        assert_eq!(
            parse_data_accesses(&request(&alice, "")).unwrap().after,
            None
        );
        assert_eq!(refused_fields(&request(&bea, &token)), ["page_token"]);
    }

    #[test]
    fn a_token_that_is_not_one_is_refused_naming_page_token() {
        let alice = person("11010519800312001");
        // A group's key: a time, kind 1, a 16-byte id.
        let cursor = Cursor::from_bytes(&[[0; 8].as_slice(), &[1; 17]].concat()).unwrap();
        let token = page_token(&alice, &cursor);
        let mut flipped = token.clone().into_bytes();
        flipped[4] = if flipped[4] == b'0' { b'1' } else { b'0' };
        for bad in [
            "not hex".to_owned(),
            "abc".to_owned(),
            token[..token.len() - 2].to_owned(),
            String::from_utf8(flipped).unwrap(),
            format!("02{}", &token[2..]),
            "00".repeat(40),
        ] {
            assert_eq!(
                refused_fields(&request(&alice, &bad)),
                ["page_token"],
                "{bad}"
            );
        }
        let long = request(&alice, &"0".repeat(MAX_PAGE_TOKEN_CHARS + 1));
        let v = parse_data_accesses(&long).unwrap_err();
        assert!(v.too_long());
        // With a malformed person the token's shape is still checked.
        let mut both = request(&alice, "zz");
        both.person_id = "123".into();
        assert_eq!(refused_fields(&both), ["person_id", "page_token"]);
    }
}
