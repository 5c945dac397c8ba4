//! The fields of each profile section that a grant may list to narrow the section, and
//! sets of them. Each name is the kebab-case word of the policy file, within its section.

use std::fmt;

use super::{MaskKind, Section};

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
    /// Provident fund: the account balance, monthly deposit and run of deposits.
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
    fn field_names_round_trip_within_their_section() {
        for s in Section::ALL {
            for f in s.fields() {
                assert_eq!(Field::parse(s, f.name()), Some(f));
            }
        }
        assert_eq!(Field::parse(Section::Identity, "address"), None);
        assert_eq!(
            Field::parse(Section::Property, "address"),
            Some(Field::TitleAddress)
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
    }
}
