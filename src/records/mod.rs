//! What a record is, independent of transport: the agencies and their record types,
//! record keys, subjects, and the field-by-field validation every record passes at the
//! wire boundary (adapters) and again before it is materialized (resolver).

pub mod stored;
mod validate;

use std::fmt;

pub use validate::{
    FieldViolation, Horizon, MAX_REPEATED, MAX_SOURCE_EVENT_ID_CHARS, MAX_VIOLATIONS, Violations,
    max_chars, validate_event, validate_meta, validate_payload,
};

use crate::domain::{CivilDate, ResidentId, UnitNumber};
use crate::proto::{self, Agency, record_event::Payload};

/// The four agencies, in a fixed order (topics, CLI, dev wiring).
pub const AGENCIES: [Agency; 4] = [
    Agency::SocialSecurity,
    Agency::PublicSecurity,
    Agency::Housing,
    Agency::ProvidentFund,
];

/// The name of an agency wherever govlink writes one: topic names, record keys, the
/// command line, the policy file, certificates, the audit trail and metric labels.
pub fn agency_slug(agency: Agency) -> &'static str {
    match agency {
        Agency::SocialSecurity => "social-security",
        Agency::PublicSecurity => "public-security",
        Agency::Housing => "housing",
        Agency::ProvidentFund => "provident-fund",
        Agency::Unspecified => "unspecified",
    }
}

/// The agency named by a slug; `None` for anything else (including "unspecified").
pub fn agency_from_slug(slug: &str) -> Option<Agency> {
    AGENCIES.into_iter().find(|a| agency_slug(*a) == slug)
}

/// The agency names, for error messages (`social-security, public-security, ...`).
pub fn agency_slugs() -> String {
    AGENCIES.map(agency_slug).join(", ")
}

/// Every record type, each owned by exactly one agency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordType {
    /// Social-security enrollment in one insurance type.
    Enrollment,
    /// One month of social-security contributions.
    ContributionPeriod,
    /// Social-security transfer-out certificate.
    TransferOutCertificate,
    /// Identity (name, sex, birth date).
    Identity,
    /// Household registration (hukou).
    HouseholdRegistration,
    /// Real-estate title.
    PropertyTitle,
    /// Sale contract of a unit.
    SaleContract,
    /// Provident-fund account.
    ProvidentFundAccount,
    /// Provident-fund loan.
    ProvidentFundLoan,
}

impl RecordType {
    /// All record types.
    pub const ALL: [RecordType; 9] = [
        RecordType::Enrollment,
        RecordType::ContributionPeriod,
        RecordType::TransferOutCertificate,
        RecordType::Identity,
        RecordType::HouseholdRegistration,
        RecordType::PropertyTitle,
        RecordType::SaleContract,
        RecordType::ProvidentFundAccount,
        RecordType::ProvidentFundLoan,
    ];

    /// The name used in record keys and in `RecordEvent.record_type`.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordType::Enrollment => "enrollment",
            RecordType::ContributionPeriod => "contribution_period",
            RecordType::TransferOutCertificate => "transfer_out_certificate",
            RecordType::Identity => "identity",
            RecordType::HouseholdRegistration => "household_registration",
            RecordType::PropertyTitle => "property_title",
            RecordType::SaleContract => "sale_contract",
            RecordType::ProvidentFundAccount => "account",
            RecordType::ProvidentFundLoan => "loan",
        }
    }

    /// The agency that owns records of this type.
    pub fn agency(self) -> Agency {
        match self {
            RecordType::Enrollment
            | RecordType::ContributionPeriod
            | RecordType::TransferOutCertificate => Agency::SocialSecurity,
            RecordType::Identity | RecordType::HouseholdRegistration => Agency::PublicSecurity,
            RecordType::PropertyTitle | RecordType::SaleContract => Agency::Housing,
            RecordType::ProvidentFundAccount | RecordType::ProvidentFundLoan => {
                Agency::ProvidentFund
            }
        }
    }

    /// The record type of `agency` called `name`.
    pub fn parse(agency: Agency, name: &str) -> Option<RecordType> {
        Self::ALL
            .into_iter()
            .find(|t| t.agency() == agency && t.as_str() == name)
    }

    /// The record type a payload carries.
    pub fn of_payload(payload: &Payload) -> RecordType {
        match payload {
            Payload::Enrollment(_) => RecordType::Enrollment,
            Payload::ContributionPeriod(_) => RecordType::ContributionPeriod,
            Payload::TransferOutCertificate(_) => RecordType::TransferOutCertificate,
            Payload::Identity(_) => RecordType::Identity,
            Payload::HouseholdRegistration(_) => RecordType::HouseholdRegistration,
            Payload::PropertyTitle(_) => RecordType::PropertyTitle,
            Payload::SaleContract(_) => RecordType::SaleContract,
            Payload::ProvidentFundAccount(_) => RecordType::ProvidentFundAccount,
            Payload::ProvidentFundLoan(_) => RecordType::ProvidentFundLoan,
        }
    }
}

/// The longest record id an agency may use.
pub const MAX_RECORD_ID_LEN: usize = 64;

/// Whether `id` is a well-formed record id (1 to 64 of `A-Z a-z 0-9 . _ : -`).
pub fn is_valid_record_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_RECORD_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// `agency/record_type/record_id`: the Kafka message key and the identity of a record.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordKey(String);

impl RecordKey {
    /// The key of record `record_id` of type `record_type`.
    pub fn new(record_type: RecordType, record_id: &str) -> RecordKey {
        RecordKey(format!(
            "{}/{}/{}",
            agency_slug(record_type.agency()),
            record_type.as_str(),
            record_id
        ))
    }

    /// The key of record `record_id` of type `record_type`, checking the id.
    pub fn checked(record_type: RecordType, record_id: &str) -> Result<RecordKey, &'static str> {
        if !is_valid_record_id(record_id) {
            return Err("record id must be 1 to 64 characters of A-Z a-z 0-9 . _ : -");
        }
        Ok(RecordKey::new(record_type, record_id))
    }

    /// Parses a key, checking the agency, the record type and the record id.
    pub fn parse(key: &str) -> Result<RecordKey, &'static str> {
        let mut parts = key.splitn(3, '/');
        let (Some(agency), Some(record_type), Some(record_id)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err("must be agency/record_type/record_id");
        };
        let agency = agency_from_slug(agency).ok_or(
            "unknown agency: expected social-security, public-security, housing or provident-fund",
        )?;
        let record_type =
            RecordType::parse(agency, record_type).ok_or("unknown record type for this agency")?;
        RecordKey::checked(record_type, record_id)
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The record type named by the key (keys are only made valid).
    pub fn record_type(&self) -> RecordType {
        let mut parts = self.0.splitn(3, '/');
        let agency = parts.next().and_then(agency_from_slug);
        let name = parts.next().unwrap_or_default();
        agency
            .and_then(|a| RecordType::parse(a, name))
            .expect("a RecordKey is made only from a valid agency and record type")
    }

    /// The record id part of the key.
    pub fn record_id(&self) -> &str {
        self.0.splitn(3, '/').nth(2).unwrap_or_default()
    }
}

impl fmt::Display for RecordKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A subject in its storage form: `p:<resident id>` or `u:<unit number>`. Redis keys are
/// hash-tagged with it, so all records of one subject share one Redis Cluster slot.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubjectKey(String);

impl SubjectKey {
    /// The subject key of a person.
    pub fn person(id: &ResidentId) -> SubjectKey {
        SubjectKey(format!("p:{id}"))
    }

    /// The subject key of a property unit.
    pub fn unit(unit: &UnitNumber) -> SubjectKey {
        SubjectKey(format!("u:{unit}"))
    }

    /// Rebuilds a key stored earlier (no validation: only keys made here are stored).
    pub fn from_stored(stored: &str) -> SubjectKey {
        SubjectKey(stored.to_owned())
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The resident ID of a person subject; `None` for a property unit.
    pub fn person_id(&self) -> Option<&str> {
        self.0.strip_prefix("p:")
    }

    /// The wire form of this subject.
    pub fn to_proto(&self) -> proto::Subject {
        let (kind, id) = match self.0.split_once(':') {
            Some(("p", id)) => (proto::SubjectKind::Person, id),
            Some(("u", id)) => (proto::SubjectKind::PropertyUnit, id),
            _ => (proto::SubjectKind::Unspecified, self.0.as_str()),
        };
        proto::Subject {
            kind: kind as i32,
            id: id.to_owned(),
        }
    }
}

/// The subjects a payload is about, derived from its (already validated) fields.
pub fn subjects_of(payload: &Payload) -> Vec<SubjectKey> {
    // No birth date is "in the future" here: validation judged that with its own clock
    // and skew allowance, and a lagging clock must not drop a subject it accepted.
    let person = |id: &str| {
        ResidentId::parse_as_of(id, CivilDate::MAX)
            .ok()
            .map(|p| SubjectKey::person(&p))
    };
    let unit = |id: &str| UnitNumber::parse(id).ok().map(|u| SubjectKey::unit(&u));
    let mut subjects: Vec<SubjectKey> = match payload {
        Payload::Enrollment(r) => person(&r.person_id).into_iter().collect(),
        Payload::ContributionPeriod(r) => person(&r.person_id).into_iter().collect(),
        Payload::TransferOutCertificate(r) => person(&r.person_id).into_iter().collect(),
        Payload::Identity(r) => person(&r.person_id).into_iter().collect(),
        Payload::HouseholdRegistration(r) => person(&r.person_id)
            .into_iter()
            .chain(unit(&r.property_unit_number))
            .collect(),
        Payload::PropertyTitle(r) => unit(&r.unit_number)
            .into_iter()
            .chain(r.owners.iter().filter_map(|o| person(&o.person_id)))
            .collect(),
        Payload::SaleContract(r) => unit(&r.unit_number)
            .into_iter()
            .chain(r.seller_ids.iter().filter_map(|id| person(id)))
            .chain(r.buyer_ids.iter().filter_map(|id| person(id)))
            .collect(),
        Payload::ProvidentFundAccount(r) => person(&r.person_id).into_iter().collect(),
        Payload::ProvidentFundLoan(r) => person(&r.borrower_id)
            .into_iter()
            .chain(unit(&r.unit_number))
            .collect(),
    };
    subjects.sort();
    subjects.dedup();
    subjects
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_keys_round_trip_and_reject_malformed_keys() {
        let key = RecordKey::new(RecordType::PropertyTitle, "T-1");
        assert_eq!(key.as_str(), "housing/property_title/T-1");
        assert_eq!(RecordKey::parse(key.as_str()).unwrap(), key);
        for bad in [
            "",
            "housing",
            "housing/property_title",
            "housing/property_title/",
            "police/identity/1",
            "housing/identity/1",
            "housing/property_title/a/b",
            "housing/property_title/with space",
        ] {
            assert!(RecordKey::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn every_record_type_parses_back_under_its_agency_only() {
        for t in RecordType::ALL {
            assert_eq!(RecordType::parse(t.agency(), t.as_str()), Some(t));
            for other in AGENCIES.into_iter().filter(|a| *a != t.agency()) {
                assert_eq!(RecordType::parse(other, t.as_str()), None);
            }
        }
        for a in AGENCIES {
            assert_eq!(agency_from_slug(agency_slug(a)), Some(a));
        }
        assert_eq!(agency_from_slug("unspecified"), None);
    }
}
