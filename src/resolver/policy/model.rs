//! The vocabulary a policy speaks: purposes, the sections of a person profile, the fields of each section a grant may list, and the kinds of value that
//! are masked unless a grant says otherwise.
//!
//! Every name here is the kebab-case word used in the policy file, so the file, the
//! `policy check` table and error messages all read the same.

use std::fmt;

use crate::identity::{SlugError, check_slug};
use crate::proto::Agency;
use crate::records::RecordType;

/// Why data is looked at, e.g. `property-transfer`: a validated lowercase slug.
///
/// Every lookup names its purpose; a grant is for one purpose, never a wildcard, so
/// data fetched for one procedure cannot silently serve another.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Purpose(String);

impl Purpose {
    /// Parses a purpose at the wire or file boundary.
    pub fn parse(s: &str) -> Result<Self, SlugError> {
        check_slug(s)?;
        Ok(Self(s.to_owned()))
    }

    /// The purpose as written, e.g. `property-transfer`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A section of a person profile (`GetPersonProfile`): the unit a lookup returns,
/// withholds, or reports as empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Section {
    /// Name, sex, birth date, resident ID (public security).
    Identity,
    /// Household registration (hukou): address, region, status (public security).
    Household,
    /// Enrollments, the contribution summary, transfer-out certificates (social security).
    SocialSecurity,
    /// Account and loans (housing provident fund).
    ProvidentFund,
    /// Property titles the person owns (housing).
    Property,
}

impl Section {
    /// Every section, in the order a profile lists them.
    pub const ALL: [Section; 5] = [
        Section::Identity,
        Section::Household,
        Section::SocialSecurity,
        Section::ProvidentFund,
        Section::Property,
    ];

    /// The policy-file name, e.g. `provident-fund`.
    pub fn name(self) -> &'static str {
        match self {
            Section::Identity => "identity",
            Section::Household => "household",
            Section::SocialSecurity => "social-security",
            Section::ProvidentFund => "provident-fund",
            Section::Property => "property",
        }
    }

    /// The section a policy-file name denotes.
    pub fn parse(name: &str) -> Option<Section> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The agency whose records the section is built from (the answer names it).
    pub fn source_agency(self) -> Agency {
        match self {
            Section::Identity | Section::Household => Agency::PublicSecurity,
            Section::SocialSecurity => Agency::SocialSecurity,
            Section::ProvidentFund => Agency::ProvidentFund,
            Section::Property => Agency::Housing,
        }
    }

    /// The section a record type's data belongs to: what a grant must include for a
    /// reader of such records (a sale contract is the property's, as its title is).
    pub fn of_record(record_type: RecordType) -> Section {
        match record_type {
            RecordType::Identity => Section::Identity,
            RecordType::HouseholdRegistration => Section::Household,
            RecordType::Enrollment
            | RecordType::ContributionPeriod
            | RecordType::TransferOutCertificate => Section::SocialSecurity,
            RecordType::ProvidentFundAccount | RecordType::ProvidentFundLoan => {
                Section::ProvidentFund
            }
            RecordType::PropertyTitle | RecordType::SaleContract => Section::Property,
        }
    }

    /// The fields of this section, in declaration order.
    pub fn fields(self) -> impl Iterator<Item = Field> {
        Field::ALL.into_iter().filter(move |f| f.section() == self)
    }
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A kind of value shown masked unless the grant lists it under `unmasked`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MaskKind {
    /// Resident ID numbers: `110101********123X`.
    ResidentId,
    /// Personal names: `张*`.
    Name,
    /// Addresses: cut to the district.
    Address,
}

impl MaskKind {
    /// Every kind, in the order tables list them.
    pub const ALL: [MaskKind; 3] = [MaskKind::ResidentId, MaskKind::Name, MaskKind::Address];

    /// The policy-file name, e.g. `resident-id`.
    pub fn name(self) -> &'static str {
        match self {
            MaskKind::ResidentId => "resident-id",
            MaskKind::Name => "name",
            MaskKind::Address => "address",
        }
    }

    /// The kind a policy-file name denotes.
    pub fn parse(name: &str) -> Option<MaskKind> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Masks `value` by the rule of this kind (see [`super::mask`]).
    pub fn mask(self, value: &str) -> String {
        match self {
            MaskKind::ResidentId => super::mask::resident_id(value),
            MaskKind::Name => super::mask::name(value),
            MaskKind::Address => super::mask::address(value),
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A field of a section that a grant may list to narrow the section.
///
/// A grant that lists a section without fields grants all of its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Field {
    /// Identity: the resident ID number.
    PersonId,
    /// Identity: the name.
    Name,
    /// Identity: sex.
    Sex,
    /// Identity: birth date.
    BirthDate,
    /// Household: the household (hukou booklet) number.
    HouseholdNumber,
    /// Household: the region code of the registration.
    HouseholdRegion,
    /// Household: the registered address.
    HouseholdAddress,
    /// Household: REGISTERED / MOVED_OUT / DECEASED.
    HouseholdStatus,
    /// Household: the property unit the registration is at.
    HouseholdPropertyUnit,
    /// Household: the date of registration.
    HouseholdRegisteredOn,
    /// Household: where the person moved to (region and address).
    HouseholdDestination,
    /// Social security: enrollments per insurance type (region, employer, status).
    Enrollments,
    /// Social security: months paid per region, longest gap, last paid month.
    Contributions,
    /// Social security: transfer-out certificates.
    TransferCertificates,
    /// Provident fund: the account (number, region, employer, status, opened on).
    FundAccount,
    /// Provident fund: the account balance and monthly deposit.
    FundBalance,
    /// Provident fund: loans (unit, principal, outstanding principal, status).
    FundLoans,
    /// Property: the real-estate unit number.
    TitleUnitNumber,
    /// Property: the title certificate number.
    TitleCertificate,
    /// Property: the unit's address.
    TitleAddress,
    /// Property: owners and their shares.
    TitleOwners,
    /// Property: floor area.
    TitleArea,
    /// Property: mortgages and seizures.
    TitleEncumbrances,
    /// Property: the date the title was registered.
    TitleRegisteredOn,
}

/// Per field: its section, its policy-file name, and the maskable kind of value it
/// carries (used to reject an `unmasked` entry that no granted field could show).
const FIELD_TABLE: [(Field, Section, &str, Option<MaskKind>); 24] = [
    (
        Field::PersonId,
        Section::Identity,
        "person-id",
        Some(MaskKind::ResidentId),
    ),
    (Field::Name, Section::Identity, "name", Some(MaskKind::Name)),
    (Field::Sex, Section::Identity, "sex", None),
    (Field::BirthDate, Section::Identity, "birth-date", None),
    (Field::HouseholdNumber, Section::Household, "number", None),
    (Field::HouseholdRegion, Section::Household, "region", None),
    (
        Field::HouseholdAddress,
        Section::Household,
        "address",
        Some(MaskKind::Address),
    ),
    (Field::HouseholdStatus, Section::Household, "status", None),
    (
        Field::HouseholdPropertyUnit,
        Section::Household,
        "property-unit",
        None,
    ),
    (
        Field::HouseholdRegisteredOn,
        Section::Household,
        "registered-on",
        None,
    ),
    (
        Field::HouseholdDestination,
        Section::Household,
        "destination",
        Some(MaskKind::Address),
    ),
    (
        Field::Enrollments,
        Section::SocialSecurity,
        "enrollments",
        None,
    ),
    (
        Field::Contributions,
        Section::SocialSecurity,
        "contributions",
        None,
    ),
    (
        Field::TransferCertificates,
        Section::SocialSecurity,
        "transfer-certificates",
        None,
    ),
    (Field::FundAccount, Section::ProvidentFund, "account", None),
    (Field::FundBalance, Section::ProvidentFund, "balance", None),
    // The borrower is the subject, but a loan may be shown to a window that serves
    // the other party of a sale, so its ID is masked like any other.
    (
        Field::FundLoans,
        Section::ProvidentFund,
        "loans",
        Some(MaskKind::ResidentId),
    ),
    (
        Field::TitleUnitNumber,
        Section::Property,
        "unit-number",
        None,
    ),
    (
        Field::TitleCertificate,
        Section::Property,
        "certificate",
        None,
    ),
    (
        Field::TitleAddress,
        Section::Property,
        "address",
        Some(MaskKind::Address),
    ),
    // Co-owners are other people: their IDs are the ones masking protects most.
    (
        Field::TitleOwners,
        Section::Property,
        "owners",
        Some(MaskKind::ResidentId),
    ),
    (Field::TitleArea, Section::Property, "area", None),
    (
        Field::TitleEncumbrances,
        Section::Property,
        "encumbrances",
        None,
    ),
    (
        Field::TitleRegisteredOn,
        Section::Property,
        "registered-on",
        None,
    ),
];

impl Field {
    /// Every field, grouped by section.
    pub const ALL: [Field; 24] = {
        let mut all = [Field::PersonId; 24];
        let mut i = 0;
        while i < 24 {
            all[i] = FIELD_TABLE[i].0;
            i += 1;
        }
        all
    };

    fn row(self) -> &'static (Field, Section, &'static str, Option<MaskKind>) {
        // The table is in declaration order; a test checks it.
        &FIELD_TABLE[self as usize]
    }

    /// The section the field belongs to.
    pub fn section(self) -> Section {
        self.row().1
    }

    /// The policy-file name within its section, e.g. `loans`.
    pub fn name(self) -> &'static str {
        self.row().2
    }

    /// The maskable kind of value this field carries, if any.
    pub fn carries(self) -> Option<MaskKind> {
        self.row().3
    }

    /// The field of `section` a policy-file name denotes.
    pub fn parse(section: Section, name: &str) -> Option<Field> {
        section.fields().find(|f| f.name() == name)
    }

    fn bit(self) -> u32 {
        1 << self as u8
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.section().name(), self.name())
    }
}

/// A set of fields, as a bit mask: a decision is copied per lookup, so it stays a
/// couple of integers instead of allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FieldSet(u32);

impl FieldSet {
    /// All fields of `section`.
    pub fn section(section: Section) -> Self {
        section.fields().collect()
    }

    /// Adds a field.
    pub fn insert(&mut self, field: Field) {
        self.0 |= field.bit();
    }

    /// Whether the set holds `field`.
    pub fn contains(self, field: Field) -> bool {
        self.0 & field.bit() != 0
    }

    /// Whether the set holds any field of `section`.
    pub fn has_section(self, section: Section) -> bool {
        self.0 & FieldSet::section(section).0 != 0
    }

    /// Whether the set holds every field of `section`.
    pub fn has_whole_section(self, section: Section) -> bool {
        let all = FieldSet::section(section).0;
        self.0 & all == all
    }

    /// The fields in the set, grouped by section.
    pub fn iter(self) -> impl Iterator<Item = Field> {
        Field::ALL.into_iter().filter(move |f| self.contains(*f))
    }
}

impl FromIterator<Field> for FieldSet {
    fn from_iter<I: IntoIterator<Item = Field>>(iter: I) -> Self {
        let mut set = FieldSet::default();
        for f in iter {
            set.insert(f);
        }
        set
    }
}

/// A set of mask kinds, as a bit mask (see [`FieldSet`] for why).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MaskKindSet(u8);

impl MaskKindSet {
    /// Adds a kind.
    pub fn insert(&mut self, kind: MaskKind) {
        self.0 |= kind.bit();
    }

    /// Whether the set holds `kind`.
    pub fn contains(self, kind: MaskKind) -> bool {
        self.0 & kind.bit() != 0
    }

    /// The kinds in the set.
    pub fn iter(self) -> impl Iterator<Item = MaskKind> {
        MaskKind::ALL.into_iter().filter(move |k| self.contains(*k))
    }
}

impl FromIterator<MaskKind> for MaskKindSet {
    fn from_iter<I: IntoIterator<Item = MaskKind>>(iter: I) -> Self {
        let mut set = MaskKindSet::default();
        for k in iter {
            set.insert(k);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_table_is_in_declaration_order_and_grouped_by_section() {
        for (i, row) in FIELD_TABLE.iter().enumerate() {
            assert_eq!(row.0 as usize, i, "{} is out of place", row.0);
        }
        let sections: Vec<Section> = Field::ALL.iter().map(|f| f.section()).collect();
        let mut sorted = sections.clone();
        sorted.sort();
        assert_eq!(sections, sorted);
        for s in Section::ALL {
            assert!(s.fields().count() > 0, "{s} has no fields");
        }
    }

    #[test]
    fn names_round_trip() {
        for s in Section::ALL {
            assert_eq!(Section::parse(s.name()), Some(s));
            for f in s.fields() {
                assert_eq!(Field::parse(s, f.name()), Some(f));
            }
        }
        for k in MaskKind::ALL {
            assert_eq!(MaskKind::parse(k.name()), Some(k));
        }
        assert_eq!(Section::parse("Identity"), None);
        assert_eq!(Field::parse(Section::Identity, "address"), None);
        assert_eq!(
            Field::parse(Section::Property, "address"),
            Some(Field::TitleAddress)
        );
    }

    #[test]
    fn purposes_are_lowercase_slugs() {
        assert_eq!(
            Purpose::parse("property-transfer").unwrap().as_str(),
            "property-transfer"
        );
        assert_eq!(
            Purpose::parse("self-view2").unwrap().to_string(),
            "self-view2"
        );
        let rule = |s: &str| Purpose::parse(s).unwrap_err().rule;
        assert_eq!(rule(""), "must not be empty");
        assert_eq!(
            rule("Property-Transfer"),
            "only a-z, 0-9 and '-' are allowed"
        );
        assert_eq!(
            rule("property transfer"),
            "only a-z, 0-9 and '-' are allowed"
        );
        assert_eq!(rule("房产过户"), "only a-z, 0-9 and '-' are allowed");
        assert_eq!(rule("2fa"), "must start with a letter");
        assert_eq!(rule("-x"), "must start with a letter");
        assert_eq!(
            rule("property-"),
            "'-' must separate words (no trailing or doubled '-')"
        );
        assert_eq!(
            rule("a--b"),
            "'-' must separate words (no trailing or doubled '-')"
        );
        assert_eq!(rule(&"a".repeat(65)), "must be at most 64 characters");
        assert!(Purpose::parse(&"a".repeat(64)).is_ok());
        assert_eq!(
            Purpose::parse(&"A".repeat(100)).unwrap_err().found.len(),
            64
        );
    }

    #[test]
    fn field_sets_hold_exactly_what_was_inserted() {
        let set: FieldSet = [Field::FundLoans, Field::Name].into_iter().collect();
        assert!(set.contains(Field::FundLoans));
        assert!(!set.contains(Field::FundBalance));
        assert!(set.has_section(Section::ProvidentFund));
        assert!(!set.has_whole_section(Section::ProvidentFund));
        assert!(!set.has_section(Section::Household));
        assert_eq!(
            set.iter().collect::<Vec<_>>(),
            vec![Field::Name, Field::FundLoans]
        );
        assert!(FieldSet::section(Section::Property).has_whole_section(Section::Property));
        assert!(!FieldSet::section(Section::Property).has_section(Section::Identity));

        let kinds: MaskKindSet = [MaskKind::Address].into_iter().collect();
        assert!(kinds.contains(MaskKind::Address));
        assert!(!kinds.contains(MaskKind::Name));
    }
}
