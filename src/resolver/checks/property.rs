//! "May this flat change owner?": the property-transfer check over the records of the
//! unit, the sellers and the buyers, from all four agencies.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::address::normalise_address;
use super::{
    Blocker, BlockerCode, CheckError, CheckOutcome, Contributions, Live, Party, PartyRole,
    RecordSet, month_index, month_of_index, same_id,
};
use crate::domain::{CivilDate, ResidentId, UnitNumber, YearMonth};
use crate::proto::{
    self, Agency, EncumbranceKind, HouseholdStatus, LoanStatus, SaleContractStatus,
};

/// A local purchase rule: to buy in a region, a buyer needs `months_required` months of
/// social-security contributions paid in that region within the last `within_months`
/// months (e.g. 24 of the last 36). Read from configuration; checked by
/// [`PurchaseRule::validate`] before use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
// A misspelt key is an error naming it, not a rule silently missing that key.
#[serde(deny_unknown_fields)]
pub struct PurchaseRule {
    /// Division-code prefix the rule covers: "1101" is all of Beijing, "110105" one
    /// district. The rule applies to units in it, and counts contributions paid in it.
    pub region_prefix: String,
    /// Months of contributions the buyer must have paid in the region.
    pub months_required: u32,
    /// The window those months must fall in, ending with the current month.
    pub within_months: u32,
}

/// The longest window a rule may look back: 100 years is past any real rule, and the
/// bound keeps month arithmetic far from overflow.
const MAX_WINDOW_MONTHS: u32 = 1200;

impl PurchaseRule {
    /// Why the rule cannot be applied, if it cannot.
    pub fn validate(&self) -> Result<(), &'static str> {
        let prefix = &self.region_prefix;
        if !(2..=6).contains(&prefix.len()) || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err("region_prefix must be 2 to 6 digits of a division code");
        }
        if self.within_months == 0 || self.within_months > MAX_WINDOW_MONTHS {
            return Err("within_months must be 1 to 1200");
        }
        if self.months_required == 0 || self.months_required > self.within_months {
            return Err("months_required must be 1 to within_months");
        }
        Ok(())
    }

    /// Whether the rule governs purchases of `unit`.
    pub fn applies_to(&self, unit: &UnitNumber) -> bool {
        unit.division().starts_with(&self.region_prefix)
    }
}

/// Where a household registration places its person, as far as a sale of a unit goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Registered at the unit: by its number, or by the title's address.
    AtUnit,
    /// Not at the unit: moved out, deceased, registered at another unit, or at an address
    /// in another district.
    Elsewhere,
    /// Registered without a unit number in the unit's own district, at an address that is
    /// not the title's as far as spelling rules go: only the police can say.
    Unsure,
}

/// Where `registration` places its person relative to the unit numbered `unit`, whose
/// title gives the address `unit_address` (normalised by [`normalise_address`]; `None`
/// without a title). The unit number is exact when the police recorded one; the address
/// is the fallback for older registrations that carry only an address. The property
/// check and the case plan both decide by this one function, so they cannot disagree.
pub fn placement(
    registration: &proto::HouseholdRegistration,
    unit: &str,
    unit_address: Option<&str>,
) -> Placement {
    if registration.status() != HouseholdStatus::Registered {
        return Placement::Elsewhere;
    }
    if !registration.property_unit_number.is_empty() {
        return if registration.property_unit_number.eq_ignore_ascii_case(unit) {
            Placement::AtUnit
        } else {
            Placement::Elsewhere
        };
    }
    if unit_address.is_some_and(|a| a == normalise_address(&registration.address)) {
        Placement::AtUnit
    } else if unit.get(..6) == Some(registration.region_code.as_str()) {
        Placement::Unsure
    } else {
        Placement::Elsewhere
    }
}

/// Whether a provident-fund loan is settled: marked so, with no principal left. A loan
/// marked settled with principal left, or unsettled with none, is inconsistent; either
/// way the fund centre has to confirm before a transfer.
pub fn loan_settled(loan: &proto::ProvidentFundLoan) -> bool {
    loan.status() == LoanStatus::Settled && loan.outstanding_principal_fen == 0
}

/// Checks whether `unit` may pass from `sellers` to `buyers`, given the records read for
/// the unit and every party, the local purchase `rules` and `today` (China's civil date).
///
/// Every applicable rule is evaluated, so the citizen sees all blockers at once, in a
/// fixed order: title and ownership, seizure, provident-fund loans, household
/// registrations, sale contract, purchase rules. Errors are for requests that make no
/// sense (no seller, a seller who also buys, a broken rule), not for blockers.
pub fn check_property_transfer(
    unit: &UnitNumber,
    sellers: &[ResidentId],
    buyers: &[ResidentId],
    records: &[proto::RecordEvent],
    contributions: &Contributions,
    rules: &[PurchaseRule],
    today: CivilDate,
) -> Result<CheckOutcome, CheckError> {
    validate_request(sellers, buyers, rules)?;
    let set = RecordSet::new(records);
    let on_unit = |number: &str| number.eq_ignore_ascii_case(unit.as_str());
    let title = set
        .titles()
        .filter(|t| on_unit(&t.record.unit_number))
        .max_by_key(|t| t.version);

    let mut blockers = Vec::new();
    match &title {
        None => blockers.push(Blocker {
            code: BlockerCode::TitleNotFound,
            agency: Agency::Housing,
            record: None,
            party: None,
            action_zh: "不动产登记簿中没有该房屋的产权记录，请到不动产登记中心核实房屋单元号。"
                .into(),
            action_en: "The real-estate registry has no title for this unit: check the unit \
                        number with the registry."
                .into(),
        }),
        Some(title) => {
            ownership_blockers(title, sellers, &mut blockers);
            seizure_blockers(title, &mut blockers);
        }
    }
    loan_blockers(&set, &on_unit, sellers, &mut blockers);
    household_blockers(&set, unit, title.as_ref(), sellers, &mut blockers);
    contract_blockers(&set, &on_unit, sellers, buyers, &mut blockers);
    purchase_rule_blockers(contributions, unit, buyers, rules, today, &mut blockers);
    Ok(CheckOutcome::from_blockers(blockers))
}

/// Why a request for [`check_property_transfer`] makes no sense, if it does not: run it
/// before reading anything.
pub fn validate_request(
    sellers: &[ResidentId],
    buyers: &[ResidentId],
    rules: &[PurchaseRule],
) -> Result<(), CheckError> {
    if sellers.is_empty() {
        return Err(CheckError::NoSellers);
    }
    if buyers.is_empty() {
        return Err(CheckError::NoBuyers);
    }
    for (role, parties) in [(PartyRole::Seller, sellers), (PartyRole::Buyer, buyers)] {
        let mut seen = BTreeSet::new();
        for (i, party) in parties.iter().enumerate() {
            if !seen.insert(party.as_str()) {
                return Err(CheckError::DuplicateParty {
                    role,
                    position: i + 1,
                });
            }
        }
    }
    for (s, seller) in sellers.iter().enumerate() {
        if let Some(b) = buyers.iter().position(|b| b == seller) {
            return Err(CheckError::SellerIsBuyer {
                seller: s + 1,
                buyer: b + 1,
            });
        }
    }
    for (index, rule) in rules.iter().enumerate() {
        rule.validate()
            .map_err(|reason| CheckError::InvalidRule { index, reason })?;
    }
    Ok(())
}

fn seller(index: usize) -> Option<Party> {
    Some(Party {
        role: PartyRole::Seller,
        index,
    })
}

fn ownership_blockers(
    title: &Live<'_, proto::PropertyTitle>,
    sellers: &[ResidentId],
    blockers: &mut Vec<Blocker>,
) {
    let mut sold_share: u64 = 0;
    for (i, s) in sellers.iter().enumerate() {
        match title
            .record
            .owners
            .iter()
            .find(|o| same_id(&o.person_id, s.as_str()))
        {
            Some(owner) => sold_share += u64::from(owner.share_basis_points),
            None => blockers.push(Blocker {
                code: BlockerCode::SellerNotOwner,
                agency: Agency::Housing,
                record: Some(title.proof()),
                party: seller(i),
                action_zh: format!(
                    "第{}位卖方不是该房屋的登记产权人，只有产权人可以出售；如产权已变更，请到不动产登记中心办理变更登记。",
                    i + 1
                ),
                action_en: format!(
                    "Seller {} is not an owner on the title; only owners can sell. If \
                     ownership changed, register the change with the real-estate registry.",
                    i + 1
                ),
            }),
        }
    }
    // Shares are basis points of the whole title, which validation keeps at 10000.
    if sold_share != 10_000 && sold_share > 0 {
        let percent = |bp: u64| format!("{}.{:02}%", bp / 100, bp % 100);
        blockers.push(Blocker {
            code: BlockerCode::SellerSharesIncomplete,
            agency: Agency::Housing,
            record: Some(title.proof()),
            party: None,
            action_zh: format!(
                "卖方合计只持有该房屋{}的份额，其他共有人须一同出售（或出具委托书）。",
                percent(sold_share)
            ),
            action_en: format!(
                "The sellers hold only {} of the title: every co-owner must join the sale \
                 (in person or by power of attorney).",
                percent(sold_share)
            ),
        });
    }
}

fn seizure_blockers(title: &Live<'_, proto::PropertyTitle>, blockers: &mut Vec<Blocker>) {
    for seizure in title
        .record
        .encumbrances
        .iter()
        .filter(|e| e.kind() == EncumbranceKind::Seizure)
    {
        // The court's credit code is public and tells the citizen which court to go to.
        let court = &seizure.holder_credit_code;
        blockers.push(Blocker {
            code: BlockerCode::UnitSeized,
            agency: Agency::Housing,
            record: Some(title.proof()),
            party: None,
            action_zh: format!(
                "该房屋已被法院查封（查封机关统一社会信用代码 {court}），须由该法院解除查封并到不动产登记中心办理解封登记后方可过户。"
            ),
            action_en: format!(
                "A court (credit code {court}) has seized this unit: the court must lift the \
                 seizure and the release be registered before the transfer."
            ),
        });
    }
}

fn loan_blockers(
    set: &RecordSet<'_>,
    on_unit: &dyn Fn(&str) -> bool,
    sellers: &[ResidentId],
    blockers: &mut Vec<Blocker>,
) {
    for loan in set.loans().filter(|l| on_unit(&l.record.unit_number)) {
        let record = loan.record;
        if loan_settled(record) {
            continue;
        }
        let borrower = sellers
            .iter()
            .position(|s| same_id(&record.borrower_id, s.as_str()));
        let amount = yuan(record.outstanding_principal_fen);
        let overdue = record.status() == LoanStatus::Overdue;
        blockers.push(Blocker {
            code: BlockerCode::ProvidentFundLoanUnsettled,
            agency: Agency::ProvidentFund,
            record: Some(loan.proof()),
            party: borrower.and_then(seller),
            action_zh: format!(
                "该房屋有未结清的住房公积金贷款（剩余本金 {amount} 元{}），请先到公积金管理中心还清贷款并办理结清，再办理过户。",
                if overdue { "，已逾期" } else { "" }
            ),
            action_en: format!(
                "A provident-fund loan on this unit is not settled ({amount} yuan principal \
                 outstanding{}): repay it and have the fund centre record it as settled \
                 before the transfer.",
                if overdue { ", overdue" } else { "" }
            ),
        });
    }
}

fn household_blockers(
    set: &RecordSet<'_>,
    unit: &UnitNumber,
    title: Option<&Live<'_, proto::PropertyTitle>>,
    sellers: &[ResidentId],
    blockers: &mut Vec<Blocker>,
) {
    let unit_address = title.map(|t| normalise_address(&t.record.address));
    for (i, s) in sellers.iter().enumerate() {
        for registration in set
            .households()
            .filter(|h| same_id(&h.record.person_id, s.as_str()))
        {
            match placement(registration.record, unit.as_str(), unit_address.as_deref()) {
                Placement::Elsewhere => continue,
                Placement::Unsure => {
                    blockers.push(Blocker {
                        code: BlockerCode::SellerHouseholdUnverified,
                        agency: Agency::PublicSecurity,
                        record: Some(registration.proof()),
                        party: seller(i),
                        action_zh: format!(
                            "第{}位卖方的户口登记在该房屋所在区，但登记地址无法与房屋地址核对一致，请到派出所核实户口是否在该房屋。",
                            i + 1
                        ),
                        action_en: format!(
                            "Seller {}'s household is registered in this flat's district at an \
                             address that cannot be matched to the flat's: have the police \
                             station confirm whether it is at this flat.",
                            i + 1
                        ),
                    });
                    continue;
                }
                Placement::AtUnit => {}
            }
            blockers.push(Blocker {
                code: BlockerCode::SellerHouseholdAtUnit,
                agency: Agency::PublicSecurity,
                record: Some(registration.proof()),
                party: seller(i),
                action_zh: format!(
                    "第{}位卖方的户口仍登记在该房屋，请先到派出所办理户口迁出，再办理过户。",
                    i + 1
                ),
                action_en: format!(
                    "Seller {}'s household registration (hukou) is still at this flat: move \
                     it out at the police station before the transfer.",
                    i + 1
                ),
            });
        }
    }
}

/// Blockers from the unit's sale contracts: none filed between exactly these sellers and
/// buyers, and any filed between other parties.
fn contract_blockers(
    set: &RecordSet<'_>,
    on_unit: &dyn Fn(&str) -> bool,
    sellers: &[ResidentId],
    buyers: &[ResidentId],
    blockers: &mut Vec<Blocker>,
) {
    let wanted = |ids: &[ResidentId]| -> BTreeSet<String> {
        ids.iter().map(|id| id.as_str().to_owned()).collect()
    };
    let given = |ids: &[String]| -> BTreeSet<String> {
        ids.iter().map(|id| id.to_ascii_uppercase()).collect()
    };
    let (sellers, buyers) = (wanted(sellers), wanted(buyers));
    let (exact, others): (Vec<_>, Vec<_>) = set
        .contracts()
        .filter(|c| on_unit(&c.record.unit_number))
        .partition(|c| {
            given(&c.record.seller_ids) == sellers && given(&c.record.buyer_ids) == buyers
        });

    if !exact
        .iter()
        .any(|c| c.record.status() == SaleContractStatus::Filed)
    {
        blockers.push(no_filed_contract(&exact));
    }
    // A filed contract locks the unit for its buyers; a second one would sell it twice.
    for other in others
        .iter()
        .filter(|c| c.record.status() == SaleContractStatus::Filed)
    {
        blockers.push(Blocker {
            code: BlockerCode::SaleContractConflict,
            agency: Agency::Housing,
            record: Some(other.proof()),
            party: None,
            action_zh: "该房屋另有一份与其他当事人的已备案买卖合同，须先办理撤销备案。".into(),
            action_en: "Another filed sale contract on this unit, between other parties, must \
                        be cancelled first."
                .into(),
        });
    }
}

/// The blocker when none of the contracts between these parties (`exact`) is filed: the
/// contract is missing, or the one closest to being usable is cited with what its status
/// asks of the parties.
fn no_filed_contract(exact: &[Live<'_, proto::SaleContract>]) -> Blocker {
    let rank = |c: &Live<'_, proto::SaleContract>| match c.record.status() {
        SaleContractStatus::Signed => 3,
        SaleContractStatus::Completed => 2,
        SaleContractStatus::Cancelled => 1,
        SaleContractStatus::Unspecified | SaleContractStatus::Filed => 0,
    };
    let Some(contract) = exact.iter().max_by_key(|c| rank(c)) else {
        return Blocker {
            code: BlockerCode::SaleContractMissing,
            agency: Agency::Housing,
            record: None,
            party: None,
            action_zh: "没有这些买卖双方就该房屋签订的买卖合同，请双方签订合同并办理网签备案。"
                .into(),
            action_en: "There is no sale contract on this unit between exactly these \
                        sellers and buyers: sign one and file it online with the housing \
                        bureau."
                .into(),
        };
    };
    let (zh, en) = unfiled_contract_actions(contract.record.status());
    Blocker {
        code: BlockerCode::SaleContractWrongStatus,
        agency: Agency::Housing,
        record: Some(contract.proof()),
        party: None,
        action_zh: zh.into(),
        action_en: en.into(),
    }
}

/// What the parties must do about a contract between them that is not filed, by its
/// `status`, in Chinese and English.
fn unfiled_contract_actions(status: SaleContractStatus) -> (&'static str, &'static str) {
    match status {
        SaleContractStatus::Signed => (
            "买卖合同已签订但尚未网签备案，请到住房和城乡建设部门办理备案。",
            "The sale contract is signed but not filed: file it online with the \
             housing bureau.",
        ),
        SaleContractStatus::Cancelled => (
            "买卖合同已撤销，请重新签订合同并办理网签备案。",
            "The sale contract was cancelled: sign and file a new one.",
        ),
        SaleContractStatus::Completed => (
            "该买卖合同已履行完毕，不能再用于过户；如需再次交易请重新签订合同。",
            "The sale contract is already completed and cannot be used again: a \
             new sale needs a new contract.",
        ),
        SaleContractStatus::Unspecified | SaleContractStatus::Filed => (
            "买卖合同状态不明，请到住房和城乡建设部门核实。",
            "The sale contract's status is unknown: ask the housing bureau to \
             check it.",
        ),
    }
}

fn purchase_rule_blockers(
    contributions: &Contributions,
    unit: &UnitNumber,
    buyers: &[ResidentId],
    rules: &[PurchaseRule],
    today: CivilDate,
    blockers: &mut Vec<Blocker>,
) {
    let rules: Vec<_> = rules.iter().filter(|r| r.applies_to(unit)).collect();
    if rules.is_empty() {
        return;
    }
    let last = today.year_month();
    for (j, buyer) in buyers.iter().enumerate() {
        let summary = contributions.of(buyer);
        for rule in &rules {
            let first = window_start(last, rule.within_months);
            let paid = summary.months_paid_in(&rule.region_prefix, first, last);
            if paid >= rule.months_required {
                continue;
            }
            let (prefix, n, m) = (
                &rule.region_prefix,
                rule.months_required,
                rule.within_months,
            );
            blockers.push(Blocker {
                code: BlockerCode::BuyerPurchaseRuleNotMet,
                agency: Agency::SocialSecurity,
                record: None,
                party: Some(Party {
                    role: PartyRole::Buyer,
                    index: j,
                }),
                action_zh: format!(
                    "第{}位买方近{m}个月内在本地（区划代码 {prefix}）缴纳社保{paid}个月，不足购房所需的{n}个月。如有缴费未记录，请到社会保险经办机构核实更正。",
                    j + 1
                ),
                action_en: format!(
                    "Buyer {} paid {paid} months of social-security contributions in region \
                     {prefix} within the last {m} months; buying here needs {n}. If payments \
                     are missing from the record, ask the social-security bureau to correct it.",
                    j + 1
                ),
            });
        }
    }
}

/// The first month of a window of `months` months ending with `last`.
pub(super) fn window_start(last: YearMonth, months: u32) -> YearMonth {
    // Validation bounds `months` by 1200, so this cannot overflow.
    let first = month_index(last) - months as i32 + 1;
    month_of_index(first).unwrap_or_else(|| YearMonth::new(1, 1).unwrap_or(last))
}

/// Fen as yuan with two decimals, e.g. `123456.78`.
pub(super) fn yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let fen = fen.unsigned_abs();
    format!("{sign}{}.{:02}", fen / 100, fen % 100)
}

#[cfg(test)]
#[path = "property_tests.rs"]
mod tests;
