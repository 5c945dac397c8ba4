//! The sections of a person profile: the unit a lookup returns, withholds or reports as
//! empty, and the unit a grant lists. Each name is the kebab-case word of the policy
//! file, so the file, the `policy check` table and error messages all read the same.

use std::fmt;

use super::Field;
use crate::proto::Agency;
use crate::records::RecordType;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn section_names_round_trip() {
        for s in Section::ALL {
            assert_eq!(Section::parse(s.name()), Some(s));
        }
        assert_eq!(Section::parse("Identity"), None);
    }
}
