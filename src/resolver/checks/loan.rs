//! "May this person borrow from the housing provident fund to buy this unit, and how much
//! at most?": the loan check over the applicant's fund account and loans, the unit's
//! title and sale contracts, and, where a local rule asks, the applicant's household
//! registration and social-security contributions. Decided from the shared records, so
//! the applicant uploads no proof; a record that is missing is a blocker naming it, never
//! a condition met.

use serde::{Deserialize, Serialize};

use super::property::{window_start, yuan};
use super::{
    Blocker, BlockerCode, CheckError, CheckOutcome, ContributionSummary, Live, RecordRef,
    RecordSet, loan_settled, month_index, same_id, year_month,
};
use crate::domain::{CivilDate, ResidentId, UnitNumber, YearMonth};
use crate::proto::{self, AccountStatus, Agency, HouseholdStatus, LoanStatus, SaleContractStatus};

pub use super::property::PurchaseRule as LocalLoanRule;

/// The most a configured balance multiple may be.
const MAX_BALANCE_MULTIPLE: u32 = 100;
/// The highest cap a rule may set: 100 million yuan, far above any fund's, and far from
/// overflowing a multiplication of a balance.
const MAX_CAP_FEN: i64 = 10_000_000_000;
/// The longest run of deposits a rule may require: 100 years.
const MAX_DEPOSIT_MONTHS: u32 = 1200;

/// The fund's loan rule. Read from configuration (`[provident_fund_loan]`); checked by
/// [`LoanRule::validate`] before use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
// A misspelt key is an error naming it, not a rule silently keeping its default.
#[serde(deny_unknown_fields, default)]
pub struct LoanRule {
    /// Months of deposits without a gap, up to last month, an applicant needs.
    pub deposit_months_required: u32,
    /// The largest loan is the account balance times this ...
    pub balance_multiple: u32,
    /// ... and never more than this, in fen.
    pub cap_fen: i64,
    /// Rules of regions that lend to applicants from elsewhere only after months of local
    /// social-security contributions: an applicant buying a unit in `region_prefix` whose
    /// household is not registered there needs `months_required` months paid there within
    /// the last `within_months`.
    pub local_rules: Vec<LocalLoanRule>,
}

impl Default for LoanRule {
    /// Six months of deposits; fifteen times the balance, at most 1.2 million yuan; no
    /// local rule.
    fn default() -> LoanRule {
        LoanRule {
            deposit_months_required: 6,
            balance_multiple: 15,
            cap_fen: 120_000_000,
            local_rules: Vec::new(),
        }
    }
}

impl LoanRule {
    /// Why the rule cannot be applied, if it cannot: the offending key and the reason.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_DEPOSIT_MONTHS).contains(&self.deposit_months_required) {
            return Err(format!(
                "deposit_months_required must be 1 to {MAX_DEPOSIT_MONTHS}"
            ));
        }
        if !(1..=MAX_BALANCE_MULTIPLE).contains(&self.balance_multiple) {
            return Err(format!(
                "balance_multiple must be 1 to {MAX_BALANCE_MULTIPLE}"
            ));
        }
        if !(1..=MAX_CAP_FEN).contains(&self.cap_fen) {
            return Err(format!("cap_fen must be 1 to {MAX_CAP_FEN}"));
        }
        for (i, rule) in self.local_rules.iter().enumerate() {
            rule.validate()
                .map_err(|reason| format!("local_rules[{i}]: {reason}"))?;
        }
        Ok(())
    }

    /// Whether any local rule governs loans for `unit` (then the check reads the
    /// applicant's household and contributions).
    pub fn local_rules_apply(&self, unit: &UnitNumber) -> bool {
        self.local_rules.iter().any(|r| r.applies_to(unit))
    }
}

/// Which bound of the rule decided the largest loan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoanBound {
    /// The balance times the multiple.
    Balance,
    /// The cap.
    Cap,
}

impl LoanBound {
    /// The wire form: `balance` or `cap`.
    pub fn as_str(self) -> &'static str {
        match self {
            LoanBound::Balance => "balance",
            LoanBound::Cap => "cap",
        }
    }
}

/// The largest loan the rule allows, with the inputs it was computed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoanLimit {
    /// min(balance × multiple, cap), in fen.
    pub max_loan_fen: i64,
    /// The balance of the account the rule was applied to.
    pub balance_fen: i64,
    /// The rule's multiple.
    pub balance_multiple: u32,
    /// The rule's cap.
    pub cap_fen: i64,
    /// The account the balance comes from.
    pub account: RecordRef,
    /// Which bound decided.
    pub bounded_by: LoanBound,
}

/// The answer of a provident-fund loan check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoanOutcome {
    /// Eligible or not, and the blockers.
    pub outcome: CheckOutcome,
    /// The largest loan; `None` without an active account to apply the rule to.
    pub limit: Option<LoanLimit>,
    /// Months of unbroken deposits up to last month (0 when the account does not say).
    pub consecutive_deposit_months: u32,
    /// The months the rule requires.
    pub deposit_months_required: u32,
}

/// The applicant, the unit and the amount a loan check is about.
#[derive(Debug, Clone, Copy)]
pub struct LoanApplication<'a> {
    /// Who borrows.
    pub person: &'a ResidentId,
    /// The unit the loan buys.
    pub unit: &'a UnitNumber,
    /// The loan applied for, in fen (more than zero).
    pub amount_fen: i64,
}

/// Checks `application` against `rule`, given the records read for the applicant and the
/// unit, the applicant's contribution `summary` (read only when a local rule applies) and
/// `today` (China's civil date).
///
/// Blockers come in a fixed order: the fund account (missing, not active, deposits
/// unknown or too few), the applicant's unsettled loans, the unit not bought by the
/// applicant, the local rules, the amount over the largest loan.
pub fn check_provident_fund_loan(
    application: LoanApplication<'_>,
    records: &[proto::RecordEvent],
    summary: &ContributionSummary,
    rule: &LoanRule,
    today: CivilDate,
) -> Result<LoanOutcome, CheckError> {
    rule.validate()
        .map_err(|reason| CheckError::InvalidLoanRule { reason })?;
    let person = application.person;
    let set = RecordSet::new(records);
    let accounts: Vec<_> = set
        .accounts()
        .filter(|a| same_id(&a.record.person_id, person.as_str()))
        .collect();
    let last_month = previous_month(today);
    let account = accounts
        .iter()
        .filter(|a| a.record.status() == AccountStatus::Active)
        .max_by_key(|a| (current_run(a.record, last_month), a.record.balance_fen));

    let mut blockers = Vec::new();
    let months = account.map_or(0, |a| current_run(a.record, last_month));
    match account {
        None => blockers.push(no_active_account(accounts.first())),
        Some(a) => blockers.extend(deposit_blocker(a, months, last_month, rule)),
    }
    blockers.extend(
        set.loans()
            .filter(|l| same_id(&l.record.borrower_id, person.as_str()))
            .filter(|l| !loan_settled(l.record))
            .map(|l| unsettled_loan(&l)),
    );
    blockers.extend(not_buyer(&set, application));
    blockers.extend(local_rule_blockers(&set, application, summary, rule, today));
    let limit = account.map(|a| limit_of(a, rule));
    if let Some(limit) = &limit
        && application.amount_fen > limit.max_loan_fen
    {
        blockers.push(over_limit(application.amount_fen, limit));
    }
    Ok(LoanOutcome {
        outcome: CheckOutcome::from_blockers(blockers),
        limit,
        consecutive_deposit_months: months,
        deposit_months_required: rule.deposit_months_required,
    })
}

/// The month before `today`'s: the latest month whose deposit is surely due (the current
/// month's is paid during the month).
fn previous_month(today: CivilDate) -> YearMonth {
    super::month_of_index(month_index(today.year_month()) - 1).unwrap_or(today.year_month())
}

/// The account's unbroken run of deposits that reaches `last_month` (or later); 0 when
/// the run stopped earlier or the account does not report one.
fn current_run(account: &proto::ProvidentFundAccount, last_month: YearMonth) -> u32 {
    match year_month(account.last_deposit_month.as_ref()) {
        Some(last) if last >= last_month => account.consecutive_deposit_months,
        _ => 0,
    }
}

/// The blocker when the applicant has no active account: `account` is one that is not
/// active (sealed or closed), or `None` when the fund has no account for the applicant.
fn no_active_account(account: Option<&Live<'_, proto::ProvidentFundAccount>>) -> Blocker {
    match account {
        None => Blocker {
            code: BlockerCode::FundAccountMissing,
            agency: Agency::ProvidentFund,
            record: None,
            party: None,
            action_zh:
                "公积金管理中心没有申请人的住房公积金账户记录，请到公积金管理中心核实缴存账户。"
                    .into(),
            action_en: "The provident-fund centre has no account record of the applicant: \
                        check the account with the fund centre."
                .into(),
        },
        Some(account) => Blocker {
            code: BlockerCode::FundAccountNotActive,
            agency: Agency::ProvidentFund,
            record: Some(account.proof()),
            party: None,
            action_zh: "申请人的住房公积金账户已封存或销户，须由单位恢复正常缴存后方可申请贷款。"
                .into(),
            action_en: "The applicant's provident-fund account is sealed or closed: the \
                        employer must resume deposits before a loan can be applied for."
                .into(),
        },
    }
}

/// The blocker when the active `account` does not show `rule`'s months of deposits up to
/// `last_month`: it does not report its run (unknown, never assumed), or the run is too
/// short or stopped before `last_month`. `months` is the run that counts.
fn deposit_blocker(
    account: &Live<'_, proto::ProvidentFundAccount>,
    months: u32,
    last_month: YearMonth,
    rule: &LoanRule,
) -> Option<Blocker> {
    let required = rule.deposit_months_required;
    let Some(last) = year_month(account.record.last_deposit_month.as_ref()) else {
        return Some(Blocker {
            code: BlockerCode::FundDepositRunUnknown,
            agency: Agency::ProvidentFund,
            record: Some(account.proof()),
            party: None,
            action_zh: format!(
                "公积金账户记录未载明连续缴存情况，无法核实是否连续缴存满{required}个月，请公积金管理中心更新账户记录。"
            ),
            action_en: format!(
                "The provident-fund account record does not say how many months deposits \
                 were paid without a gap, so {required} consecutive months cannot be \
                 confirmed: the fund centre must update the account record."
            ),
        });
    };
    if months >= required {
        return None;
    }
    let (zh, en) = if last < last_month {
        (
            format!("最近一次缴存为{last}，已中断"),
            format!("deposits stopped after {last}"),
        )
    } else {
        (
            format!("截至{last}连续缴存{months}个月"),
            format!("{months} consecutive months up to {last}"),
        )
    };
    Some(Blocker {
        code: BlockerCode::FundDepositMonthsNotMet,
        agency: Agency::ProvidentFund,
        record: Some(account.proof()),
        party: None,
        action_zh: format!(
            "申请公积金贷款须连续足额缴存{required}个月（至{last_month}），申请人{zh}；请继续缴存，如缴存未记录请到公积金管理中心核实。"
        ),
        action_en: format!(
            "A provident-fund loan needs {required} consecutive months of deposits up to \
             {last_month}; the account shows {en}. Keep depositing, or have the fund centre \
             correct the record if deposits are missing."
        ),
    })
}

/// The blocker for an unsettled loan of the applicant: outstanding, or overdue.
fn unsettled_loan(loan: &Live<'_, proto::ProvidentFundLoan>) -> Blocker {
    let amount = yuan(loan.record.outstanding_principal_fen);
    if loan.record.status() == LoanStatus::Overdue {
        return Blocker {
            code: BlockerCode::BorrowerLoanOverdue,
            agency: Agency::ProvidentFund,
            record: Some(loan.proof()),
            party: None,
            action_zh: format!(
                "申请人有逾期的住房公积金贷款（剩余本金 {amount} 元），请先还清逾期款项并到公积金管理中心办理结清。"
            ),
            action_en: format!(
                "The applicant has an overdue provident-fund loan ({amount} yuan principal \
                 outstanding): repay it and have the fund centre record it as settled."
            ),
        };
    }
    Blocker {
        code: BlockerCode::BorrowerLoanOutstanding,
        agency: Agency::ProvidentFund,
        record: Some(loan.proof()),
        party: None,
        action_zh: format!(
            "申请人尚有未结清的住房公积金贷款（剩余本金 {amount} 元），须还清并办理结清后方可再次申请。"
        ),
        action_en: format!(
            "The applicant has a provident-fund loan not yet settled ({amount} yuan \
             principal outstanding): it must be repaid and recorded as settled before \
             another loan."
        ),
    }
}

/// The blocker when neither the unit's title names the applicant as owner nor a filed
/// (or completed) sale contract on the unit names them as buyer. It cites the contract
/// naming them that is not filed, else the title naming others; without either, it is a
/// missing record.
fn not_buyer(set: &RecordSet<'_>, application: LoanApplication<'_>) -> Option<Blocker> {
    let person = application.person.as_str();
    let on_unit = |number: &str| number.eq_ignore_ascii_case(application.unit.as_str());
    let title = set
        .titles()
        .filter(|t| on_unit(&t.record.unit_number))
        .max_by_key(|t| t.version);
    if title.as_ref().is_some_and(|t| {
        t.record
            .owners
            .iter()
            .any(|o| same_id(&o.person_id, person))
    }) {
        return None;
    }
    let naming: Vec<_> = set
        .contracts()
        .filter(|c| on_unit(&c.record.unit_number))
        .filter(|c| c.record.buyer_ids.iter().any(|b| same_id(b, person)))
        .collect();
    let filed = |c: &&Live<'_, proto::SaleContract>| {
        matches!(
            c.record.status(),
            SaleContractStatus::Filed | SaleContractStatus::Completed
        )
    };
    if naming.iter().any(|c| filed(&c)) {
        return None;
    }
    let (record, zh, en) = match (naming.first(), title) {
        (Some(contract), _) => (
            Some(contract.proof()),
            "申请人作为买方的购房合同尚未网签备案，请到住房和城乡建设部门办理备案后再申请贷款。",
            "The sale contract naming the applicant as buyer is not filed: file it with the \
             housing bureau, then apply.",
        ),
        (None, Some(title)) => (
            Some(title.proof()),
            "该房屋的不动产权证未登记申请人为产权人，也没有已备案的购房合同载明申请人为买方；公积金贷款只能用于申请人本人购买的住房。",
            "The unit's title does not name the applicant as owner and no filed sale \
             contract names them as buyer: a provident-fund loan is only for a home the \
             applicant buys.",
        ),
        (None, None) => (
            None,
            "不动产登记中心没有该房屋的产权记录，也没有载明申请人为买方的已备案购房合同，请先办理购房合同网签备案。",
            "The housing bureau has neither a title for this unit nor a filed sale \
             contract naming the applicant as buyer: sign and file the sale contract first.",
        ),
    };
    Some(Blocker {
        code: BlockerCode::ApplicantNotBuyer,
        agency: Agency::Housing,
        record,
        party: None,
        action_zh: zh.into(),
        action_en: en.into(),
    })
}

/// Blockers from the local rules of the unit's region: an applicant whose household is
/// registered in the region meets a rule; one who is not (or of whom the police have no
/// record, which proves nothing) needs the rule's months of local contributions.
fn local_rule_blockers(
    set: &RecordSet<'_>,
    application: LoanApplication<'_>,
    summary: &ContributionSummary,
    rule: &LoanRule,
    today: CivilDate,
) -> Vec<Blocker> {
    let person = application.person.as_str();
    let households: Vec<_> = set
        .households()
        .filter(|h| same_id(&h.record.person_id, person))
        .collect();
    let last = today.year_month();
    let mut blockers = Vec::new();
    for local in rule
        .local_rules
        .iter()
        .filter(|r| r.applies_to(application.unit))
    {
        let prefix = &local.region_prefix;
        let registered_here = households.iter().any(|h| {
            h.record.status() == HouseholdStatus::Registered
                && h.record.region_code.starts_with(prefix.as_str())
        });
        if registered_here {
            continue;
        }
        let paid = summary.months_paid_in(prefix, window_start(last, local.within_months), last);
        if paid >= local.months_required {
            continue;
        }
        let (n, m) = (local.months_required, local.within_months);
        blockers.push(Blocker {
            code: BlockerCode::LoanLocalRuleNotMet,
            agency: Agency::SocialSecurity,
            record: households.first().map(|h| h.proof()),
            party: None,
            action_zh: format!(
                "申请人户籍不在本地（区划代码 {prefix}），近{m}个月内在本地缴纳社保{paid}个月，不足非本地户籍申请公积金贷款所需的{n}个月。如户籍或缴费记录有误，请到公安机关或社会保险经办机构核实更正。"
            ),
            action_en: format!(
                "The applicant's household is not registered in region {prefix} and paid \
                 {paid} months of social-security contributions there within the last {m} \
                 months; a loan to an applicant from elsewhere needs {n}. If the household \
                 or contribution record is wrong, ask the police or the social-security \
                 bureau to correct it."
            ),
        });
    }
    blockers
}

/// The largest loan `rule` allows on `account`'s balance.
fn limit_of(account: &Live<'_, proto::ProvidentFundAccount>, rule: &LoanRule) -> LoanLimit {
    // Validation keeps the multiple at most 100; a balance near i64::MAX saturates.
    let by_balance = account
        .record
        .balance_fen
        .max(0)
        .saturating_mul(i64::from(rule.balance_multiple));
    let (max_loan_fen, bounded_by) = if by_balance <= rule.cap_fen {
        (by_balance, LoanBound::Balance)
    } else {
        (rule.cap_fen, LoanBound::Cap)
    };
    LoanLimit {
        max_loan_fen,
        balance_fen: account.record.balance_fen,
        balance_multiple: rule.balance_multiple,
        cap_fen: rule.cap_fen,
        account: account.proof(),
        bounded_by,
    }
}

/// The blocker when `amount_fen` is more than the largest loan.
fn over_limit(amount_fen: i64, limit: &LoanLimit) -> Blocker {
    let (amount, max, balance, cap) = (
        yuan(amount_fen),
        yuan(limit.max_loan_fen),
        yuan(limit.balance_fen),
        yuan(limit.cap_fen),
    );
    let multiple = limit.balance_multiple;
    Blocker {
        code: BlockerCode::LoanAmountOverLimit,
        agency: Agency::ProvidentFund,
        record: Some(limit.account.clone()),
        party: None,
        action_zh: format!(
            "申请金额 {amount} 元超过可贷额度 {max} 元（账户余额 {balance} 元 × {multiple} 倍，最高 {cap} 元），请按可贷额度调整申请金额。"
        ),
        action_en: format!(
            "The {amount} yuan applied for is more than the largest loan, {max} yuan \
             (balance {balance} yuan × {multiple}, at most {cap} yuan): apply for at most \
             that."
        ),
    }
}

#[cfg(test)]
#[path = "loan_tests.rs"]
mod tests;
