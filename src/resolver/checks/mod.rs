//! Cross-agency checks: pure functions over the records a check read, answering "may this
//! flat change owner?", "may this social-security account move to city B?" and "may
//! this person borrow from the provident fund to buy this flat?".
//!
//! A check never does I/O. The resolver reads the records of the subjects involved (one
//! round trip per subject), hands them over as `RecordEvent`s, and gets back a
//! [`CheckOutcome`]: eligible or not, and every [`Blocker`] with the agency that can clear
//! it, the record that proves it and what the citizen should do, in Chinese and English.
//! Because every input is explicit (records, parameters, `today`), each blocker is tested
//! without a broker or a store.

mod address;
mod loan;
mod property;
mod social_security;
mod summary;

#[cfg(test)]
pub(crate) mod fixtures;

use std::collections::BTreeMap;
use std::fmt;

pub use address::normalise_address;
pub use loan::{
    LoanApplication, LoanBound, LoanLimit, LoanOutcome, LoanRule, LocalLoanRule,
    check_provident_fund_loan,
};
pub use property::{
    Placement, PurchaseRule, check_property_transfer, loan_settled, placement,
    validate_request as validate_property_transfer,
};
pub use social_security::{SocialSecurityTransferOutcome, check_social_security_transfer};
pub use summary::{ContributionSummary, Gap, StoredFieldError, SummaryView};

use crate::domain::YearMonth;
use crate::proto::{self, Agency, Op, RecordEvent, record_event::Payload};
use crate::records::{RecordKey, RecordType};

/// Why a check could not be run at all (as opposed to running and finding blockers).
///
/// Messages name parties by their position in the request, never by resident ID, so the
/// error can be logged and returned as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// A property transfer needs at least one seller.
    #[error("at least one seller is required")]
    NoSellers,
    /// A property transfer needs at least one buyer.
    #[error("at least one buyer is required")]
    NoBuyers,
    /// The same person appears twice among the sellers or twice among the buyers.
    #[error("{role} {position} appears more than once")]
    DuplicateParty {
        /// Seller or buyer.
        role: PartyRole,
        /// 1-based position of the repeated entry in the request.
        position: usize,
    },
    /// Somebody both sells and buys.
    #[error("seller {seller} is also buyer {buyer}")]
    SellerIsBuyer {
        /// 1-based position among the sellers.
        seller: usize,
        /// 1-based position among the buyers.
        buyer: usize,
    },
    /// A transfer from a region to the same region is no transfer.
    #[error("the source and target regions are the same")]
    SameRegion,
    /// A local purchase rule from the configuration cannot be applied.
    #[error("purchase rule {index}: {reason}")]
    InvalidRule {
        /// 0-based index of the rule in the configuration.
        index: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The provident-fund loan rule from the configuration cannot be applied.
    #[error("provident_fund_loan: {reason}")]
    InvalidLoanRule {
        /// What is wrong with it.
        reason: String,
    },
}

/// A party to a property transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PartyRole {
    /// Sells (and must own) the unit.
    Seller,
    /// Buys the unit.
    Buyer,
}

impl fmt::Display for PartyRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PartyRole::Seller => "seller",
            PartyRole::Buyer => "buyer",
        })
    }
}

/// Which party of the request a blocker is about: a position, not an ID, so the answer
/// carries no identifier the caller did not already send (nothing extra to mask).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Party {
    /// Seller or buyer.
    pub role: PartyRole,
    /// 0-based position in the request's sellers or buyers.
    pub index: usize,
}

/// A stable machine code for a blocker: portals and case plans branch on it, so a code is
/// never renamed; new situations get new codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BlockerCode {
    /// The registry has no title for the unit.
    TitleNotFound,
    /// A seller is not an owner on the title.
    SellerNotOwner,
    /// The sellers' shares do not add up to the whole title: a co-owner is missing.
    SellerSharesIncomplete,
    /// A court seized the unit.
    UnitSeized,
    /// A provident-fund loan on the unit is not settled.
    ProvidentFundLoanUnsettled,
    /// A seller's household registration is still at the unit.
    SellerHouseholdAtUnit,
    /// A seller's household is registered in the unit's district at an address that cannot
    /// be matched to the unit's: the police must confirm where it is.
    SellerHouseholdUnverified,
    /// No sale contract on the unit between exactly these sellers and buyers.
    SaleContractMissing,
    /// The contract between these parties is not in the status a transfer needs (filed).
    SaleContractWrongStatus,
    /// Another filed contract on the unit, between other parties, is still in force.
    SaleContractConflict,
    /// A buyer fails a local purchase rule (months of local social-security contributions).
    BuyerPurchaseRuleNotMet,
    /// No open enrollment in the source region to transfer.
    NoEnrollmentInSource,
    /// No enrollment in the target region to receive the transfer.
    NoEnrollmentInTarget,
    /// The same insurance is active in both regions: contributions are paid twice.
    DuplicateActiveEnrollment,
    /// Months of the source enrollment without a paid contribution.
    UnpaidContributionMonths,
    /// The source region has not issued the transfer-out certificate yet.
    TransferOutCertificateMissing,
    /// The fund centre has no account of the loan applicant.
    FundAccountMissing,
    /// The applicant's fund account is sealed or closed.
    FundAccountNotActive,
    /// The applicant's account record does not report its run of deposits.
    FundDepositRunUnknown,
    /// Too few months of deposits without a gap, up to last month.
    FundDepositMonthsNotMet,
    /// The applicant has a provident-fund loan not settled.
    BorrowerLoanOutstanding,
    /// The applicant has an overdue provident-fund loan.
    BorrowerLoanOverdue,
    /// Neither the unit's title nor a filed sale contract names the applicant as buyer.
    ApplicantNotBuyer,
    /// An applicant from elsewhere lacks the local contributions a region's rule needs.
    LoanLocalRuleNotMet,
    /// The amount applied for is more than the largest loan the rule allows.
    LoanAmountOverLimit,
}

impl BlockerCode {
    /// The wire form, e.g. `SELLER_NOT_OWNER`.
    pub fn as_str(self) -> &'static str {
        match self {
            BlockerCode::TitleNotFound => "TITLE_NOT_FOUND",
            BlockerCode::SellerNotOwner => "SELLER_NOT_OWNER",
            BlockerCode::SellerSharesIncomplete => "SELLER_SHARES_INCOMPLETE",
            BlockerCode::UnitSeized => "UNIT_SEIZED",
            BlockerCode::ProvidentFundLoanUnsettled => "PROVIDENT_FUND_LOAN_UNSETTLED",
            BlockerCode::SellerHouseholdAtUnit => "SELLER_HOUSEHOLD_AT_UNIT",
            BlockerCode::SellerHouseholdUnverified => "SELLER_HOUSEHOLD_UNVERIFIED",
            BlockerCode::SaleContractMissing => "SALE_CONTRACT_MISSING",
            BlockerCode::SaleContractWrongStatus => "SALE_CONTRACT_WRONG_STATUS",
            BlockerCode::SaleContractConflict => "SALE_CONTRACT_CONFLICT",
            BlockerCode::BuyerPurchaseRuleNotMet => "BUYER_PURCHASE_RULE_NOT_MET",
            BlockerCode::NoEnrollmentInSource => "NO_ENROLLMENT_IN_SOURCE",
            BlockerCode::NoEnrollmentInTarget => "NO_ENROLLMENT_IN_TARGET",
            BlockerCode::DuplicateActiveEnrollment => "DUPLICATE_ACTIVE_ENROLLMENT",
            BlockerCode::UnpaidContributionMonths => "UNPAID_CONTRIBUTION_MONTHS",
            BlockerCode::TransferOutCertificateMissing => "TRANSFER_OUT_CERTIFICATE_MISSING",
            BlockerCode::FundAccountMissing => "FUND_ACCOUNT_MISSING",
            BlockerCode::FundAccountNotActive => "FUND_ACCOUNT_NOT_ACTIVE",
            BlockerCode::FundDepositRunUnknown => "FUND_DEPOSIT_RUN_UNKNOWN",
            BlockerCode::FundDepositMonthsNotMet => "FUND_DEPOSIT_MONTHS_NOT_MET",
            BlockerCode::BorrowerLoanOutstanding => "BORROWER_LOAN_OUTSTANDING",
            BlockerCode::BorrowerLoanOverdue => "BORROWER_LOAN_OVERDUE",
            BlockerCode::ApplicantNotBuyer => "APPLICANT_NOT_BUYER",
            BlockerCode::LoanLocalRuleNotMet => "LOAN_LOCAL_RULE_NOT_MET",
            BlockerCode::LoanAmountOverLimit => "LOAN_AMOUNT_OVER_LIMIT",
        }
    }
}

impl fmt::Display for BlockerCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A record, at the version a check read: what a blocker cites as its proof.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecordRef {
    /// `agency/record_type/record_id`.
    pub key: RecordKey,
    /// The version the check saw.
    pub version: u64,
}

/// One reason a transfer cannot go ahead yet, and how to clear it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocker {
    /// Stable machine code.
    pub code: BlockerCode,
    /// The agency that can clear it (where the citizen or the case goes next).
    pub agency: Agency,
    /// The record that proves it; `None` when the blocker is a missing record.
    pub record: Option<RecordRef>,
    /// The party of the request it is about, when it is about one.
    pub party: Option<Party>,
    /// What to do, in plain Chinese, for the window and the citizen.
    pub action_zh: String,
    /// What to do, in plain English.
    pub action_en: String,
}

/// The answer of a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckOutcome {
    /// True exactly when there is no blocker.
    pub eligible: bool,
    /// Every blocker found, grouped by rule in a fixed order, so answers are comparable.
    pub blockers: Vec<Blocker>,
}

impl CheckOutcome {
    /// The outcome with these blockers; eligible when there are none.
    pub fn from_blockers(blockers: Vec<Blocker>) -> CheckOutcome {
        CheckOutcome {
            eligible: blockers.is_empty(),
            blockers,
        }
    }

    /// The blocker codes in order (handy for callers that only branch on codes).
    pub fn codes(&self) -> Vec<BlockerCode> {
        self.blockers.iter().map(|b| b.code).collect()
    }
}

/// One live record of type `T`, with the key and version it was read at.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Live<'a, T> {
    pub(crate) key: &'a RecordKey,
    pub(crate) version: u64,
    pub(crate) record: &'a T,
}

impl<T> Live<'_, T> {
    /// The proof to cite in a blocker.
    pub(crate) fn proof(&self) -> RecordRef {
        RecordRef {
            key: self.key.clone(),
            version: self.version,
        }
    }
}

/// The records a check read, reduced to the live state: for each key, the highest version
/// wins, and a deletion at that version hides the record. The store already converges this
/// way; doing it again here makes a check correct on any input (a replayed list, events
/// straight off a topic in tests) at the cost of one map over a few dozen records.
#[derive(Debug, Default)]
pub(crate) struct RecordSet<'a> {
    latest: BTreeMap<RecordKey, &'a RecordEvent>,
}

impl<'a> RecordSet<'a> {
    /// Reduces `events`; events whose key cannot be derived are skipped (the materializer
    /// validated everything it stored, so these are not expected).
    pub(crate) fn new(events: &'a [RecordEvent]) -> RecordSet<'a> {
        let mut latest: BTreeMap<RecordKey, &'a RecordEvent> = BTreeMap::new();
        for event in events {
            let Some(key) = key_of(event) else { continue };
            match latest.get(&key) {
                Some(seen) if seen.version >= event.version => {}
                _ => {
                    latest.insert(key, event);
                }
            }
        }
        RecordSet { latest }
    }

    /// Live records of one type, in key order (so blockers come out in a stable order).
    fn live<T: 'a>(
        &self,
        pick: fn(&'a Payload) -> Option<&'a T>,
    ) -> impl Iterator<Item = Live<'_, T>> + '_ {
        self.latest.iter().filter_map(move |(key, event)| {
            if event.op() == Op::Delete {
                return None;
            }
            let record = pick(event.payload.as_ref()?)?;
            Some(Live {
                key,
                version: event.version,
                record,
            })
        })
    }

    pub(crate) fn titles(&self) -> impl Iterator<Item = Live<'_, proto::PropertyTitle>> + '_ {
        self.live(|p| match p {
            Payload::PropertyTitle(r) => Some(r),
            _ => None,
        })
    }

    pub(crate) fn contracts(&self) -> impl Iterator<Item = Live<'_, proto::SaleContract>> + '_ {
        self.live(|p| match p {
            Payload::SaleContract(r) => Some(r),
            _ => None,
        })
    }

    pub(crate) fn loans(&self) -> impl Iterator<Item = Live<'_, proto::ProvidentFundLoan>> + '_ {
        self.live(|p| match p {
            Payload::ProvidentFundLoan(r) => Some(r),
            _ => None,
        })
    }

    pub(crate) fn households(
        &self,
    ) -> impl Iterator<Item = Live<'_, proto::HouseholdRegistration>> + '_ {
        self.live(|p| match p {
            Payload::HouseholdRegistration(r) => Some(r),
            _ => None,
        })
    }

    pub(crate) fn accounts(
        &self,
    ) -> impl Iterator<Item = Live<'_, proto::ProvidentFundAccount>> + '_ {
        self.live(|p| match p {
            Payload::ProvidentFundAccount(r) => Some(r),
            _ => None,
        })
    }

    pub(crate) fn enrollments(&self) -> impl Iterator<Item = Live<'_, proto::Enrollment>> + '_ {
        self.live(|p| match p {
            Payload::Enrollment(r) => Some(r),
            _ => None,
        })
    }

    pub(crate) fn certificates(
        &self,
    ) -> impl Iterator<Item = Live<'_, proto::TransferOutCertificate>> + '_ {
        self.live(|p| match p {
            Payload::TransferOutCertificate(r) => Some(r),
            _ => None,
        })
    }

    /// The live contribution events, with the person each one is about. Deleted records
    /// are already gone here: their latest event is the deletion.
    fn contribution_events(&self) -> impl Iterator<Item = (&'a str, &'a RecordEvent)> + '_ {
        self.latest.values().copied().filter_map(|event| {
            if event.op() == Op::Delete {
                return None;
            }
            match &event.payload {
                Some(Payload::ContributionPeriod(c)) => Some((c.person_id.as_str(), event)),
                _ => None,
            }
        })
    }
}

/// The contribution summaries of the persons a check is about. The resolver reads them
/// from the summary the store keeps up to date, so a check never decodes a person's
/// hundreds of monthly contribution records; a person without one has paid nothing.
#[derive(Debug, Clone, Default)]
pub struct Contributions(BTreeMap<String, ContributionSummary>);

impl Contributions {
    /// Adds (or replaces) the summary of the person with resident ID `person_id`.
    pub fn insert(&mut self, person_id: &str, summary: ContributionSummary) {
        self.0.insert(person_id.to_ascii_uppercase(), summary);
    }

    /// `person`'s summary; an empty one when none was read.
    pub fn of(
        &self,
        person: &crate::domain::ResidentId,
    ) -> std::borrow::Cow<'_, ContributionSummary> {
        match self.0.get(person.as_str()) {
            Some(summary) => std::borrow::Cow::Borrowed(summary),
            None => std::borrow::Cow::Owned(ContributionSummary::default()),
        }
    }

    /// The summaries of every person with live contribution events among `events` (for
    /// callers holding raw events, such as tests and tools).
    pub fn from_events(events: &[RecordEvent]) -> Contributions {
        let set = RecordSet::new(events);
        let mut by_person: BTreeMap<String, ContributionSummary> = BTreeMap::new();
        for (person, event) in set.contribution_events() {
            by_person
                .entry(person.to_ascii_uppercase())
                .or_default()
                .apply(event);
        }
        Contributions(by_person)
    }
}

/// The key of the record an event changes: from the payload for an upsert (the payload is
/// what the check reads), from the envelope's type name for a deletion (it has no payload).
pub(crate) fn key_of(event: &RecordEvent) -> Option<RecordKey> {
    let record_type = match &event.payload {
        Some(payload) => RecordType::of_payload(payload),
        None => RecordType::parse(event.agency(), &event.record_type)?,
    };
    Some(RecordKey::new(record_type, &event.record_id))
}

/// Whether a resident ID from a record names `id` (records are validated but may carry a
/// lowercase check character `x`; the parsed ID is uppercase).
pub(crate) fn same_id(record_value: &str, id: &str) -> bool {
    record_value.eq_ignore_ascii_case(id)
}

/// Months since year 0, so month arithmetic is integer arithmetic.
pub(crate) fn month_index(month: YearMonth) -> i32 {
    month.year() * 12 + month.month() as i32 - 1
}

/// The month of an index made by [`month_index`]; `None` outside years 1-9999.
pub(crate) fn month_of_index(index: i32) -> Option<YearMonth> {
    YearMonth::new(index.div_euclid(12), index.rem_euclid(12) as u32 + 1).ok()
}

/// A wire year-month as a validated one; `None` when it is not a real month.
pub(crate) fn year_month(value: Option<&proto::YearMonth>) -> Option<YearMonth> {
    let value = value?;
    YearMonth::new(value.year, u32::try_from(value.month).ok()?).ok()
}

/// A wire date's month; `None` when unset or invalid.
pub(crate) fn date_month(value: Option<&proto::Date>) -> Option<YearMonth> {
    let value = value?;
    YearMonth::new(value.year, u32::try_from(value.month).ok()?).ok()
}

/// `first` to `last` as a month range in words, e.g. `2023-03 – 2023-05`.
pub(crate) fn month_range(first: YearMonth, last: YearMonth) -> String {
    if first == last {
        first.to_string()
    } else {
        format!("{first} – {last}")
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    #[test]
    fn record_set_keeps_the_highest_version_and_honours_deletions() {
        let a1 = loan_event("L-1", 1, SELLER_A, proto::LoanStatus::Repaying, 100);
        let a3 = loan_event("L-1", 3, SELLER_A, proto::LoanStatus::Settled, 0);
        let a2 = loan_event("L-1", 2, SELLER_A, proto::LoanStatus::Overdue, 50);
        let b1 = loan_event("L-2", 1, SELLER_A, proto::LoanStatus::Repaying, 100);
        let b2 = deletion(Agency::ProvidentFund, "loan", "L-2", 2);
        let b0 = loan_event("L-2", 1, SELLER_A, proto::LoanStatus::Overdue, 100);
        let events = vec![a1, a3, a2, b1, b2, b0];
        let set = RecordSet::new(&events);
        let live: Vec<_> = set
            .loans()
            .map(|l| (l.key.as_str().to_owned(), l.version, l.record.status()))
            .collect();
        assert_eq!(
            live,
            vec![(
                "provident-fund/loan/L-1".to_owned(),
                3,
                proto::LoanStatus::Settled
            )]
        );
    }

    #[test]
    fn month_indices_round_trip_across_year_ends() {
        let dec = YearMonth::new(2023, 12).unwrap();
        let jan = YearMonth::new(2024, 1).unwrap();
        assert_eq!(month_index(jan) - month_index(dec), 1);
        assert_eq!(month_of_index(month_index(dec) + 1), Some(jan));
        assert_eq!(month_of_index(month_index(jan) - 1), Some(dec));
        assert_eq!(
            month_of_index(month_index(YearMonth::new(1, 1).unwrap()) - 1),
            None
        );
    }

    #[test]
    fn blocker_codes_are_stable_screaming_snake_case() {
        assert_eq!(BlockerCode::SellerNotOwner.as_str(), "SELLER_NOT_OWNER");
        assert_eq!(
            BlockerCode::SellerHouseholdAtUnit.to_string(),
            "SELLER_HOUSEHOLD_AT_UNIT"
        );
    }
}
