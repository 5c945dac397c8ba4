//! Assembling a person profile from the records the store returned: one section per
//! agency's share of the person, each filtered to the fields the grant allows and
//! masked as it says. Pure: tested field by field without a store.

use std::collections::BTreeMap;

use super::{QueryError, decoded};
use crate::domain::ResidentId;
use crate::proto::{self, RecordEvent, record_event::Payload};
use crate::records::RecordType;
use crate::records::SubjectKey;
use crate::resolver::checks::{ContributionSummary, SummaryView};
use crate::resolver::disputes::Dispute;
use crate::resolver::policy::{Access, Field, MaskKind, Section};
use crate::resolver::store::{StoredRecord, SubjectData, SubjectRead};

/// The record types a section is built from.
fn section_types(section: Section) -> &'static [RecordType] {
    match section {
        Section::Identity => &[RecordType::Identity],
        Section::Household => &[RecordType::HouseholdRegistration],
        Section::SocialSecurity => &[RecordType::Enrollment, RecordType::TransferOutCertificate],
        Section::ProvidentFund => &[
            RecordType::ProvidentFundAccount,
            RecordType::ProvidentFundLoan,
        ],
        Section::Property => &[RecordType::PropertyTitle],
    }
}

/// What the store must read for a profile under `access`: only the record types of the
/// fields it may see, and the contribution summary only if it may see contributions.
pub(super) fn profile_read(person: &ResidentId, access: &Access) -> SubjectRead {
    let mut types = Vec::new();
    for section in access.sections() {
        for &t in section_types(section) {
            if type_allowed(t, access) {
                types.push(t);
            }
        }
    }
    SubjectRead {
        subject: SubjectKey::person(person),
        types,
        contributions: access.allows(Field::Contributions),
    }
}

/// Whether any field the grant allows is carried by records of type `t`.
fn type_allowed(t: RecordType, access: &Access) -> bool {
    match t {
        RecordType::Enrollment => access.allows(Field::Enrollments),
        RecordType::TransferOutCertificate => access.allows(Field::TransferCertificates),
        RecordType::ProvidentFundAccount => {
            access.allows(Field::FundAccount) || access.allows(Field::FundBalance)
        }
        RecordType::ProvidentFundLoan => access.allows(Field::FundLoans),
        _ => true,
    }
}

/// Builds the profile of `person` from what the store read under `access`.
pub(super) fn assemble(
    person: &ResidentId,
    access: &Access,
    data: SubjectData,
) -> Result<proto::GetPersonProfileResponse, QueryError> {
    let events = decode_all(&data.records)?;
    let mut out = proto::GetPersonProfileResponse::default();
    for section in Section::ALL {
        let mut info = proto::SectionInfo {
            section: section.name().to_owned(),
            source_agency: section.source_agency() as i32,
            ..Default::default()
        };
        if !access.allows_section(section) {
            info.status = proto::SectionStatus::Withheld as i32;
            put_info(&mut out, section, info);
            continue;
        }
        info.withheld_fields = section
            .fields()
            .filter(|f| !access.allows(*f))
            .map(|f| f.name().to_owned())
            .collect();
        let mut used: Vec<(&StoredRecord, &RecordEvent)> = Vec::new();
        let present = match section {
            Section::Identity => identity(&mut out, access, &events, &mut used),
            Section::Household => household(&mut out, access, &events, &mut used),
            Section::SocialSecurity => social_security(
                &mut out,
                access,
                &events,
                data.contributions.as_ref(),
                &mut used,
            ),
            Section::ProvidentFund => provident_fund(&mut out, access, &events, &mut used),
            Section::Property => property(&mut out, person, access, &events, &mut used),
        };
        info.status = if present {
            proto::SectionStatus::Present
        } else {
            proto::SectionStatus::NoData
        } as i32;
        info.records = used
            .iter()
            .map(|(r, _)| proto::RecordVersion {
                record_key: r.key.as_str().to_owned(),
                version: r.version,
            })
            .collect();
        info.as_of = used
            .iter()
            .filter_map(|(_, e)| e.occurred_at)
            .max_by_key(|t| (t.seconds, t.nanos));
        put_info(&mut out, section, info);
    }
    out.withheld_sections = access.withheld().map(|s| s.name().to_owned()).collect();
    Ok(out)
}

/// Every record version the sections of `out` were built from.
pub(super) fn versions_shown(out: &proto::GetPersonProfileResponse) -> BTreeMap<String, u64> {
    infos(out)
        .into_iter()
        .flat_map(|info| &info.records)
        .map(|r| (r.record_key.clone(), r.version))
        .collect()
}

/// Names, in each section's info, the records it was built from that are disputed.
pub(super) fn mark_disputed(
    out: &mut proto::GetPersonProfileResponse,
    held: &BTreeMap<String, Dispute>,
) {
    if held.is_empty() {
        return;
    }
    let infos = [
        out.identity.as_mut().and_then(|s| s.info.as_mut()),
        out.household.as_mut().and_then(|s| s.info.as_mut()),
        out.social_security.as_mut().and_then(|s| s.info.as_mut()),
        out.provident_fund.as_mut().and_then(|s| s.info.as_mut()),
        out.property.as_mut().and_then(|s| s.info.as_mut()),
    ];
    for info in infos.into_iter().flatten() {
        info.disputes = info
            .records
            .iter()
            .filter_map(|r| held.get(&r.record_key))
            .map(|d| proto::RecordDispute {
                record_key: d.record_key.clone(),
                version: d.version,
                objection_id: d.objection_id.clone(),
            })
            .collect();
    }
}

fn infos(out: &proto::GetPersonProfileResponse) -> Vec<&proto::SectionInfo> {
    [
        out.identity.as_ref().and_then(|s| s.info.as_ref()),
        out.household.as_ref().and_then(|s| s.info.as_ref()),
        out.social_security.as_ref().and_then(|s| s.info.as_ref()),
        out.provident_fund.as_ref().and_then(|s| s.info.as_ref()),
        out.property.as_ref().and_then(|s| s.info.as_ref()),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn decode_all(records: &[StoredRecord]) -> Result<Vec<(&StoredRecord, RecordEvent)>, QueryError> {
    records.iter().map(|r| Ok((r, decoded(r)?))).collect()
}

/// Sets a section's info, creating the section message.
fn put_info(out: &mut proto::GetPersonProfileResponse, section: Section, info: proto::SectionInfo) {
    let info = Some(info);
    match section {
        Section::Identity => out.identity.get_or_insert_with(Default::default).info = info,
        Section::Household => out.household.get_or_insert_with(Default::default).info = info,
        Section::SocialSecurity => {
            out.social_security
                .get_or_insert_with(Default::default)
                .info = info;
        }
        Section::ProvidentFund => {
            out.provident_fund.get_or_insert_with(Default::default).info = info;
        }
        Section::Property => out.property.get_or_insert_with(Default::default).info = info,
    }
}

type Events<'a> = [(&'a StoredRecord, RecordEvent)];
type Used<'a, 'b> = Vec<(&'a StoredRecord, &'b RecordEvent)>;

/// The value of `field` as the grant shows it: masked or cleared.
fn show(access: &Access, field: Field, value: &mut String) {
    if !access.allows(field) {
        value.clear();
    } else if let Some(kind) = field.carries() {
        *value = access.show(kind, value).into_owned();
    }
}

/// A resident ID inside a section's record (the person's own, an owner's): masked
/// unless the grant unmasks resident IDs.
fn show_id(access: &Access, value: &mut String) {
    *value = access.show(MaskKind::ResidentId, value).into_owned();
}

fn identity<'a, 'b>(
    out: &mut proto::GetPersonProfileResponse,
    access: &Access,
    events: &'b Events<'a>,
    used: &mut Used<'a, 'b>,
) -> bool {
    let Some((stored, event, r)) = events.iter().find_map(|(s, e)| match &e.payload {
        Some(Payload::Identity(r)) => Some((*s, e, r)),
        _ => None,
    }) else {
        return false;
    };
    let mut r = r.clone();
    show(access, Field::PersonId, &mut r.person_id);
    show(access, Field::Name, &mut r.name);
    if !access.allows(Field::Sex) {
        r.sex = 0;
    }
    if !access.allows(Field::BirthDate) {
        r.birth_date = None;
    }
    used.push((stored, event));
    out.identity.get_or_insert_with(Default::default).identity = Some(r);
    true
}

fn household<'a, 'b>(
    out: &mut proto::GetPersonProfileResponse,
    access: &Access,
    events: &'b Events<'a>,
    used: &mut Used<'a, 'b>,
) -> bool {
    let section = out.household.get_or_insert_with(Default::default);
    for (stored, event) in events {
        let Some(Payload::HouseholdRegistration(r)) = &event.payload else {
            continue;
        };
        let mut r = r.clone();
        show_id(access, &mut r.person_id);
        show(access, Field::HouseholdNumber, &mut r.household_number);
        show(access, Field::HouseholdRegion, &mut r.region_code);
        show(access, Field::HouseholdAddress, &mut r.address);
        show(
            access,
            Field::HouseholdPropertyUnit,
            &mut r.property_unit_number,
        );
        if !access.allows(Field::HouseholdStatus) {
            r.status = 0;
        }
        if !access.allows(Field::HouseholdRegisteredOn) {
            r.registered_on = None;
        }
        if access.allows(Field::HouseholdDestination) {
            r.destination_address = access
                .show(MaskKind::Address, &r.destination_address)
                .into_owned();
        } else {
            r.destination_region_code.clear();
            r.destination_address.clear();
        }
        used.push((stored, event));
        section.registrations.push(r);
    }
    !section.registrations.is_empty()
}

fn social_security<'a, 'b>(
    out: &mut proto::GetPersonProfileResponse,
    access: &Access,
    events: &'b Events<'a>,
    contributions: Option<&ContributionSummary>,
    used: &mut Used<'a, 'b>,
) -> bool {
    let section = out.social_security.get_or_insert_with(Default::default);
    for (stored, event) in events {
        match &event.payload {
            Some(Payload::Enrollment(r)) if access.allows(Field::Enrollments) => {
                let mut r = r.clone();
                show_id(access, &mut r.person_id);
                section.enrollments.push(r);
            }
            Some(Payload::TransferOutCertificate(r))
                if access.allows(Field::TransferCertificates) =>
            {
                let mut r = r.clone();
                show_id(access, &mut r.person_id);
                section.certificates.push(r);
            }
            _ => continue,
        }
        used.push((stored, event));
    }
    let summary = contributions
        .filter(|_| access.allows(Field::Contributions))
        .map(|s| s.view())
        .filter(|v| v.months_paid > 0);
    section.contributions = summary.map(|v| summary_proto(&v));
    !section.enrollments.is_empty()
        || !section.certificates.is_empty()
        || section.contributions.is_some()
}

/// The wire form of a contribution summary.
pub(super) fn summary_proto(view: &SummaryView) -> proto::ContributionSummary {
    let month = |m: crate::domain::YearMonth| proto::YearMonth {
        year: m.year(),
        month: m.month() as i32,
    };
    proto::ContributionSummary {
        months_by_region: view
            .months_paid_by_region
            .iter()
            .map(|(region, months)| proto::RegionMonths {
                region_code: region.clone(),
                months: *months,
            })
            .collect(),
        months_paid: view.months_paid,
        longest_gap: view.longest_gap.map(|g| proto::MonthGap {
            first: Some(month(g.first)),
            last: Some(month(g.last)),
            months: g.months,
        }),
        last_paid_month: view.last_paid_month.map(month),
    }
}

fn provident_fund<'a, 'b>(
    out: &mut proto::GetPersonProfileResponse,
    access: &Access,
    events: &'b Events<'a>,
    used: &mut Used<'a, 'b>,
) -> bool {
    let section = out.provident_fund.get_or_insert_with(Default::default);
    let (account, balance) = (
        access.allows(Field::FundAccount),
        access.allows(Field::FundBalance),
    );
    for (stored, event) in events {
        match &event.payload {
            Some(Payload::ProvidentFundAccount(r)) if account || balance => {
                let mut r = r.clone();
                show_id(access, &mut r.person_id);
                if !account {
                    r.account_number.clear();
                    r.region_code.clear();
                    r.employer_credit_code.clear();
                    r.status = 0;
                    r.opened_on = None;
                }
                if !balance {
                    r.balance_fen = 0;
                    r.monthly_deposit_fen = 0;
                    // The deposit run is the balance's history: withheld with it.
                    r.last_deposit_month = None;
                    r.consecutive_deposit_months = 0;
                }
                section.accounts.push(r);
            }
            Some(Payload::ProvidentFundLoan(r)) if access.allows(Field::FundLoans) => {
                let mut r = r.clone();
                show_id(access, &mut r.borrower_id);
                section.loans.push(r);
            }
            _ => continue,
        }
        used.push((stored, event));
    }
    !section.accounts.is_empty() || !section.loans.is_empty()
}

fn property<'a, 'b>(
    out: &mut proto::GetPersonProfileResponse,
    person: &ResidentId,
    access: &Access,
    events: &'b Events<'a>,
    used: &mut Used<'a, 'b>,
) -> bool {
    let section = out.property.get_or_insert_with(Default::default);
    for (stored, event) in events {
        let Some(Payload::PropertyTitle(r)) = &event.payload else {
            continue;
        };
        // Listed under the person because they own a share of it.
        if !r
            .owners
            .iter()
            .any(|o| o.person_id.eq_ignore_ascii_case(person.as_str()))
        {
            continue;
        }
        let mut r = r.clone();
        show(access, Field::TitleUnitNumber, &mut r.unit_number);
        show(access, Field::TitleCertificate, &mut r.certificate_number);
        show(access, Field::TitleAddress, &mut r.address);
        if access.allows(Field::TitleOwners) {
            for owner in &mut r.owners {
                show_id(access, &mut owner.person_id);
            }
        } else {
            r.owners.clear();
        }
        if !access.allows(Field::TitleArea) {
            r.floor_area_dm2 = 0;
        }
        if !access.allows(Field::TitleEncumbrances) {
            r.encumbrances.clear();
        }
        if !access.allows(Field::TitleRegisteredOn) {
            r.registered_on = None;
        }
        used.push((stored, event));
        section.titles.push(r);
    }
    !section.titles.is_empty()
}

#[cfg(test)]
#[path = "profile_tests.rs"]
mod tests;
