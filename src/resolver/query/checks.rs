//! The transfer checks as lookups: parse, decide, read every subject involved in one
//! round trip, run the pure check, audit, answer.

use std::collections::BTreeMap;

use tokio::time::Instant;

use super::{Lookup, Queries, QueryError, check_case_id, decoded, parse_person, parse_purpose};
use crate::domain::{CivilDate, DivisionCode, ResidentId, UnitNumber};
use crate::identity::Caller;
use crate::proto::{self, RecordEvent};
use crate::records::{RecordKey, RecordType, SubjectKey, Violations};
use crate::resolver::checks::{
    Blocker, CheckError, CheckOutcome, Contributions, PartyRole, PurchaseRule,
    check_property_transfer, check_social_security_transfer, validate_property_transfer,
};
use crate::resolver::disputes::{Dispute, versions_of};
use crate::resolver::policy::{Access, Purpose, Section};
use crate::resolver::positions::Positions;
use crate::resolver::store::{SubjectData, SubjectRead, by_deadline};

/// What a check read: the records, the contribution summaries by person, and the open
/// objections that hold for the records as read (by record key).
pub(super) struct CheckRead {
    pub(super) records: Vec<RecordEvent>,
    pub(super) summaries: Contributions,
    disputes: BTreeMap<String, Dispute>,
}

impl CheckRead {
    /// A check's answer: its outcome, with every record it relied on that is under an
    /// open objection said to be disputed. A blocker citing a disputed record names the
    /// objection; a disputed record no blocker cites gets a RECORD_DISPUTED blocker of its
    /// own; and either way the check is not eligible.
    pub(super) fn judged(&self, outcome: &CheckOutcome) -> (bool, Vec<proto::Blocker>) {
        let mut out = blockers(outcome);
        mark_disputed(&mut out, &self.disputes);
        (outcome.eligible && self.disputes.is_empty(), out)
    }
}

/// The most sellers or buyers one check may name.
const MAX_PARTIES: usize = 16;

impl Queries {
    /// A check's read: every subject in one round trip while the audit entry is written
    /// (it names the sections the check reads), the records decoded, the contribution
    /// summaries by person, and the open objections against the records as read (read
    /// right after them, still while the entry is written).
    pub(super) async fn read_audited(
        &self,
        lookup: &Lookup<'_>,
        access: &Access,
        needs: &[Section],
        reads: &[SubjectRead],
        deadline: Instant,
    ) -> Result<CheckRead, QueryError> {
        let read = async {
            let data = by_deadline(deadline, self.store.read_subjects(reads)).await?;
            let (records, summaries) = gather(reads, data)?;
            let disputes = self.disputed(&versions_of(&records), deadline).await?;
            Ok::<_, QueryError>(CheckRead {
                records,
                summaries,
                disputes,
            })
        };
        let (read, audited) = tokio::join!(
            read,
            self.audit_allowed(lookup, access, needs, &[], deadline)
        );
        audited?;
        read
    }

    pub async fn property_transfer(
        &self,
        caller: &Caller,
        r: proto::CheckPropertyTransferRequest,
        deadline: Instant,
    ) -> Result<proto::CheckPropertyTransferResponse, QueryError> {
        let (unit, sellers, buyers, purpose) =
            parse_property_transfer(&r, &self.positions, &self.rules)?;
        let rules_apply = self.rules.iter().any(|rule| rule.applies_to(&unit));
        let mut needs = vec![
            Section::Property,
            Section::Household,
            Section::ProvidentFund,
        ];
        if rules_apply {
            needs.push(Section::SocialSecurity);
        }
        let lookup = Lookup {
            caller,
            method: "CheckPropertyTransfer",
            purpose,
            case_id: r.case_id,
            persons: sellers.iter().chain(&buyers).cloned().collect(),
            units: vec![unit.as_str().to_owned()],
        };
        let access = self.decide(&lookup, &needs, deadline).await?;
        self.wait_for(&r.min_positions, deadline).await?;

        let mut reads = vec![SubjectRead {
            subject: SubjectKey::unit(&unit),
            types: vec![
                RecordType::PropertyTitle,
                RecordType::SaleContract,
                RecordType::ProvidentFundLoan,
                RecordType::HouseholdRegistration,
            ],
            contributions: false,
        }];
        reads.extend(sellers.iter().map(|s| SubjectRead {
            subject: SubjectKey::person(s),
            types: vec![RecordType::HouseholdRegistration],
            contributions: false,
        }));
        if rules_apply {
            reads.extend(buyers.iter().map(|b| SubjectRead {
                subject: SubjectKey::person(b),
                types: Vec::new(),
                contributions: true,
            }));
        }
        let read = self
            .read_audited(&lookup, &access, &needs, &reads, deadline)
            .await?;
        let today = CivilDate::today_in_china();
        let outcome = check_property_transfer(
            &unit,
            &sellers,
            &buyers,
            &read.records,
            &read.summaries,
            &self.rules,
            today,
        )?;
        let (eligible, blockers) = read.judged(&outcome);
        Ok(proto::CheckPropertyTransferResponse {
            eligible,
            blockers,
            checked_on: Some(date(today)),
        })
    }

    /// `CheckSocialSecurityTransfer`.
    pub async fn social_security_transfer(
        &self,
        caller: &Caller,
        r: proto::CheckSocialSecurityTransferRequest,
        deadline: Instant,
    ) -> Result<proto::CheckSocialSecurityTransferResponse, QueryError> {
        let (person, from, to, purpose) = parse_social_security_transfer(&r, &self.positions)?;
        let method = "CheckSocialSecurityTransfer";
        let lookup = Lookup::of_person(caller, method, purpose, r.case_id, &person);
        let needs = [Section::SocialSecurity];
        let access = self.decide(&lookup, &needs, deadline).await?;
        self.wait_for(&r.min_positions, deadline).await?;
        let reads = [SubjectRead {
            subject: SubjectKey::person(&person),
            types: vec![RecordType::Enrollment, RecordType::TransferOutCertificate],
            contributions: true,
        }];
        let read = self
            .read_audited(&lookup, &access, &needs, &reads, deadline)
            .await?;
        let today = CivilDate::today_in_china();
        let result = check_social_security_transfer(
            &person,
            &from,
            &to,
            &read.records,
            &read.summaries.of(&person),
            today,
        )?;
        let (eligible, blockers) = read.judged(&result.outcome);
        Ok(proto::CheckSocialSecurityTransferResponse {
            eligible,
            blockers,
            months_paid_in_source: result.months_paid_in_source,
            checked_on: Some(date(today)),
        })
    }
}

/// A checked `CheckPropertyTransfer` request: the unit, the sellers, the buyers and the
/// purpose.
type PropertyTransferParams = (UnitNumber, Vec<ResidentId>, Vec<ResidentId>, Purpose);

/// Checks a `CheckPropertyTransfer` request field by field, then the parties against the
/// configured purchase `rules`; every broken rule by field.
pub fn parse_property_transfer(
    r: &proto::CheckPropertyTransferRequest,
    positions: &Positions,
    rules: &[PurchaseRule],
) -> Result<PropertyTransferParams, QueryError> {
    let mut v = Violations::default();
    let unit = UnitNumber::parse(&r.unit_number)
        .map_err(|e| v.add("unit_number", format!("not a real-estate unit number: {e}")))
        .ok();
    let sellers = parse_parties(&r.seller_ids, "seller_ids", &mut v);
    let buyers = parse_parties(&r.buyer_ids, "buyer_ids", &mut v);
    let purpose = parse_purpose(&r.purpose, &mut v);
    check_case_id(&r.case_id, &mut v);
    positions.check(&r.min_positions, "min_positions", &mut v);
    match (unit, purpose) {
        (Some(unit), Some(purpose)) if v.is_empty() => {
            validate_property_transfer(&sellers, &buyers, rules)?;
            Ok((unit, sellers, buyers, purpose))
        }
        _ => Err(v.into()),
    }
}

/// Checks a `CheckSocialSecurityTransfer` request field by field: the person, the source
/// and destination regions and the purpose, or every broken rule by field.
pub fn parse_social_security_transfer(
    r: &proto::CheckSocialSecurityTransferRequest,
    positions: &Positions,
) -> Result<(ResidentId, DivisionCode, DivisionCode, Purpose), Violations> {
    let mut v = Violations::default();
    let person = parse_person(&r.person_id, "person_id", &mut v);
    let region = |text: &str, field: &str, v: &mut Violations| {
        DivisionCode::parse(text)
            .map_err(|e| v.add(field, format!("not an administrative division code: {e}")))
            .ok()
    };
    let from = region(&r.from_region, "from_region", &mut v);
    let to = region(&r.to_region, "to_region", &mut v);
    if from.is_some() && from == to {
        v.add("to_region", CheckError::SameRegion.to_string());
    }
    let purpose = parse_purpose(&r.purpose, &mut v);
    check_case_id(&r.case_id, &mut v);
    positions.check(&r.min_positions, "min_positions", &mut v);
    match (person, from, to, purpose) {
        (Some(person), Some(from), Some(to), Some(purpose)) if v.is_empty() => {
            Ok((person, from, to, purpose))
        }
        _ => Err(v),
    }
}

/// Resident IDs of the parties, each violation naming its position.
fn parse_parties(ids: &[String], field: &str, v: &mut Violations) -> Vec<ResidentId> {
    if ids.len() > MAX_PARTIES {
        v.add_too_long(field, format!("at most {MAX_PARTIES} parties"));
        return Vec::new();
    }
    ids.iter()
        .enumerate()
        .filter_map(|(i, id)| parse_person(id, &format!("{field}[{i}]"), v))
        .collect()
}

/// The decoded records and the contribution summaries of a read.
fn gather(
    reads: &[SubjectRead],
    data: Vec<SubjectData>,
) -> Result<(Vec<RecordEvent>, Contributions), QueryError> {
    let mut records = Vec::new();
    let mut summaries = Contributions::default();
    for (read, data) in reads.iter().zip(data) {
        for stored in &data.records {
            records.push(decoded(stored)?);
        }
        if let (Some(summary), Some(person)) = (data.contributions, read.subject.person_id()) {
            summaries.insert(person, summary);
        }
    }
    Ok((records, summaries))
}

/// Marks the blockers citing a disputed record, and adds one for each disputed record
/// no blocker cites.
fn mark_disputed(out: &mut Vec<proto::Blocker>, held: &BTreeMap<String, Dispute>) {
    let mut cited = Vec::new();
    for b in out.iter_mut() {
        if let Some(d) = b.record.as_ref().and_then(|r| held.get(&r.record_key)) {
            b.objection_id.clone_from(&d.objection_id);
            cited.push(d.record_key.clone());
        }
    }
    for d in held.values().filter(|d| !cited.contains(&d.record_key)) {
        let agency = RecordKey::parse(&d.record_key)
            .map_or(proto::Agency::Unspecified, |k| k.record_type().agency());
        out.push(proto::Blocker {
            code: "RECORD_DISPUTED".into(),
            agency: agency as i32,
            record: Some(proto::RecordVersion {
                record_key: d.record_key.clone(),
                version: d.version,
            }),
            party: None,
            action_zh: format!(
                "该记录存在未决的数据异议（{}），须由数据来源部门更正记录或驳回异议",
                d.objection_id
            ),
            action_en: format!(
                "The record is disputed (objection {}): the agency that owns it must \
                 correct it or reject the objection",
                d.objection_id
            ),
            objection_id: d.objection_id.clone(),
        });
    }
}

pub(super) fn blockers(outcome: &CheckOutcome) -> Vec<proto::Blocker> {
    outcome.blockers.iter().map(blocker).collect()
}

fn blocker(b: &Blocker) -> proto::Blocker {
    proto::Blocker {
        code: b.code.as_str().to_owned(),
        agency: b.agency as i32,
        record: b.record.as_ref().map(|r| proto::RecordVersion {
            record_key: r.key.as_str().to_owned(),
            version: r.version,
        }),
        party: b.party.map(|p| proto::Party {
            role: match p.role {
                PartyRole::Seller => proto::PartyRole::Seller,
                PartyRole::Buyer => proto::PartyRole::Buyer,
            } as i32,
            index: u32::try_from(p.index).unwrap_or(u32::MAX),
        }),
        action_zh: b.action_zh.clone(),
        action_en: b.action_en.clone(),
        objection_id: String::new(),
    }
}

pub(super) fn date(d: CivilDate) -> proto::Date {
    proto::Date {
        year: d.year(),
        month: d.month() as i32,
        day: d.day() as i32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cited_disputed_record_names_the_objection_and_an_uncited_one_gets_a_blocker() {
        let cited = "public-security/household_registration/h-1";
        let uncited = "housing/property_title/t-1";
        let mut out = vec![proto::Blocker {
            code: "SELLER_HOUSEHOLD_AT_UNIT".into(),
            record: Some(proto::RecordVersion {
                record_key: cited.into(),
                version: 1,
            }),
            ..Default::default()
        }];
        let held: BTreeMap<String, Dispute> = [(cited, 1, "case-a"), (uncited, 2, "case-b")]
            .into_iter()
            .map(|(key, version, id)| {
                let d = Dispute {
                    record_key: key.into(),
                    version,
                    objection_id: id.into(),
                };
                (key.to_owned(), d)
            })
            .collect();
        mark_disputed(&mut out, &held);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].objection_id, "case-a");
        let added = &out[1];
        assert_eq!(
            (
                added.code.as_str(),
                added.agency(),
                added.objection_id.as_str()
            ),
            ("RECORD_DISPUTED", proto::Agency::Housing, "case-b")
        );
        let record = added.record.as_ref().unwrap();
        assert_eq!((record.record_key.as_str(), record.version), (uncited, 2));
        assert!(added.action_en.contains("case-b") && added.action_zh.contains("case-b"));
    }
}
