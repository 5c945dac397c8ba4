//! One access as the trail records it, built in one place for every service: the
//! resolver's lookups, the case services' actions and the adapters' refused publishes.

use crate::domain::ResidentId;
use crate::identity::Requester;
use crate::proto::{AccessDecision, DataAccess};

/// Who asked, for what and about whom; [`Access::allowed`] and [`Access::denied`] make
/// the entry. A service adds what only it knows (the sections a lookup read, the grant's
/// line) to the entry it gets.
#[derive(Debug, Clone)]
pub struct Access<'a> {
    pub requester: &'a Requester,
    /// The citizen the requester acts for, when it said so.
    pub on_behalf_of: Option<&'a ResidentId>,
    /// The gRPC method, e.g. `GetPersonProfile` or `CasesService.OpenCase`.
    pub method: &'a str,
    pub purpose: &'a str,
    /// The case the access belongs to; empty for none.
    pub case_id: &'a str,
    /// The resident IDs it is about.
    pub persons: Vec<String>,
    /// The property unit numbers it is about.
    pub units: Vec<String>,
}

impl Access<'_> {
    /// The entry of the access, allowed.
    pub fn allowed(self) -> DataAccess {
        self.entry(AccessDecision::Allowed, String::new())
    }

    /// The entry of the access, denied for `reason`.
    pub fn denied(self, reason: impl Into<String>) -> DataAccess {
        self.entry(AccessDecision::Denied, reason.into())
    }

    fn entry(self, decision: AccessDecision, reason: String) -> DataAccess {
        DataAccess {
            requester_agency: self.requester.agency as i32,
            requester_service: self.requester.service.clone(),
            on_behalf_of: self
                .on_behalf_of
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default(),
            purpose: self.purpose.to_owned(),
            case_id: self.case_id.to_owned(),
            method: self.method.to_owned(),
            person_ids: self.persons,
            unit_numbers: self.units,
            decision: decision as i32,
            reason,
            ..DataAccess::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_access_names_who_for_whom_and_the_decision() {
        let requester = Requester::parse("housing/window").unwrap();
        let citizen = ResidentId::parse("11010519491231002X").unwrap();
        let access = Access {
            requester: &requester,
            on_behalf_of: Some(&citizen),
            method: "GetPersonProfile",
            purpose: "property-transfer",
            case_id: "case-1",
            persons: vec![citizen.as_str().to_owned()],
            units: vec!["110105-001-0001-0101".into()],
        };
        let allowed = access.clone().allowed();
        assert_eq!(allowed.requester_agency, requester.agency as i32);
        assert_eq!(allowed.requester_service, "window");
        assert_eq!(allowed.on_behalf_of, citizen.as_str());
        assert_eq!(
            (
                allowed.method.as_str(),
                allowed.purpose.as_str(),
                allowed.case_id.as_str()
            ),
            ("GetPersonProfile", "property-transfer", "case-1")
        );
        assert_eq!(allowed.person_ids, [citizen.as_str()]);
        assert_eq!(allowed.unit_numbers, ["110105-001-0001-0101"]);
        assert_eq!(allowed.decision, AccessDecision::Allowed as i32);
        assert!(allowed.reason.is_empty());
        let denied = access.denied("no grant");
        assert_eq!(denied.decision, AccessDecision::Denied as i32);
        assert_eq!(denied.reason, "no grant");
    }
}
