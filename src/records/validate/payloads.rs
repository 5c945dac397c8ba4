//! The rules of each record type, field by field.

use super::{Check, max_chars};
use crate::domain::{Sex, YearMonth};
use crate::proto;

/// The longest unbroken run of monthly deposits an account may report: 100 years.
const MAX_DEPOSIT_RUN_MONTHS: u32 = 1200;

impl Check<'_> {
    pub(super) fn enrollment(&mut self, r: &mut proto::Enrollment) {
        self.person("person_id", &mut r.person_id);
        self.enumeration::<proto::InsuranceType>("insurance_type", r.insurance_type);
        self.division("region_code", &mut r.region_code);
        self.optional_credit_code("employer_credit_code", &mut r.employer_credit_code);
        self.enumeration::<proto::EnrollmentStatus>("status", r.status);
        let start = self.past_date("start_date", r.start_date.as_ref(), true);
        // An end date may lie ahead: an employer reports a leaver before the last day
        // (contributions stop at month end), and the source holds that scheduled end
        // as fact. Only its order against start_date is checked.
        let end = self.date("end_date", r.end_date.as_ref(), false);
        if let (Some(start), Some(end)) = (start, end)
            && end < start
        {
            self.fail("end_date", "must not be before start_date");
        }
    }

    pub(super) fn contribution_period(&mut self, r: &mut proto::ContributionPeriod) {
        self.person("person_id", &mut r.person_id);
        self.enumeration::<proto::InsuranceType>("insurance_type", r.insurance_type);
        self.division("region_code", &mut r.region_code);
        self.optional_credit_code("employer_credit_code", &mut r.employer_credit_code);
        match r.period.as_ref() {
            None => self.fail("period", "is required"),
            Some(p) => {
                let month = u32::try_from(p.month).unwrap_or(0);
                match YearMonth::new(p.year, month) {
                    Err(e) => self.fail("period", e.to_string()),
                    // A later month is a typo (2062 for 2026), and it would inflate the
                    // contribution months that transfer checks count.
                    Ok(period) if period > self.horizon.latest_day().year_month() => self.fail(
                        "period",
                        format!(
                            "must not be after the current month ({} in China)",
                            self.horizon.latest_day().year_month()
                        ),
                    ),
                    Ok(_) => {}
                }
            }
        }
        self.non_negative("base_fen", r.base_fen);
        self.non_negative("personal_fen", r.personal_fen);
        self.non_negative("employer_fen", r.employer_fen);
    }

    pub(super) fn transfer_out_certificate(&mut self, r: &mut proto::TransferOutCertificate) {
        self.person("person_id", &mut r.person_id);
        self.enumeration::<proto::InsuranceType>("insurance_type", r.insurance_type);
        self.text(
            "certificate_number",
            &r.certificate_number,
            max_chars::DOCUMENT_NUMBER,
        );
        let from = self.division("from_region_code", &mut r.from_region_code);
        let to = self.division("to_region_code", &mut r.to_region_code);
        if let (Some(from), Some(to)) = (from, to)
            && from == to
        {
            self.fail("to_region_code", "must differ from from_region_code");
        }
        self.past_date("issued_on", r.issued_on.as_ref(), true);
        self.non_negative("contribution_months", i64::from(r.contribution_months));
        self.non_negative(
            "personal_account_balance_fen",
            r.personal_account_balance_fen,
        );
    }

    pub(super) fn identity(&mut self, r: &mut proto::Identity) {
        let id = self.person("person_id", &mut r.person_id);
        self.text("name", &r.name, max_chars::NAME);
        let sex = self.enumeration::<proto::Sex>("sex", r.sex);
        let birth = self.past_date("birth_date", r.birth_date.as_ref(), true);
        if let Some(id) = id {
            if birth.is_some_and(|b| b != id.birth_date()) {
                self.fail("birth_date", "must equal the birth date in person_id");
            }
            let id_sex = match id.sex() {
                Sex::Male => proto::Sex::Male,
                Sex::Female => proto::Sex::Female,
            };
            if sex.is_some_and(|s| s != id_sex) {
                self.fail(
                    "sex",
                    "must agree with the sex digit of person_id (odd male, even female)",
                );
            }
        }
    }

    pub(super) fn household_registration(&mut self, r: &mut proto::HouseholdRegistration) {
        self.person("person_id", &mut r.person_id);
        self.text(
            "household_number",
            &r.household_number,
            max_chars::ACCOUNT_NUMBER,
        );
        self.division("region_code", &mut r.region_code);
        self.text("address", &r.address, max_chars::ADDRESS);
        let status = self.enumeration::<proto::HouseholdStatus>("status", r.status);
        if !r.property_unit_number.is_empty() {
            self.unit("property_unit_number", &mut r.property_unit_number);
        }
        self.past_date("registered_on", r.registered_on.as_ref(), true);
        if status == Some(proto::HouseholdStatus::MovedOut) {
            self.division("destination_region_code", &mut r.destination_region_code);
        } else if !r.destination_region_code.is_empty() {
            self.fail(
                "destination_region_code",
                "must be empty unless status is MOVED_OUT",
            );
        }
        self.optional_text(
            "destination_address",
            &r.destination_address,
            max_chars::ADDRESS,
        );
    }

    pub(super) fn property_title(&mut self, r: &mut proto::PropertyTitle) {
        self.unit("unit_number", &mut r.unit_number);
        self.text(
            "certificate_number",
            &r.certificate_number,
            max_chars::DOCUMENT_NUMBER,
        );
        self.text("address", &r.address, max_chars::ADDRESS);
        if r.owners.is_empty() {
            self.fail("owners", "must name at least one owner");
        }
        if self.at_most("owners", r.owners.len()) {
            self.owners(&mut r.owners);
        }
        if r.floor_area_dm2 == 0 {
            self.fail("floor_area_dm2", "must be more than zero");
        }
        let encumbrances = if self.at_most("encumbrances", r.encumbrances.len()) {
            r.encumbrances.as_mut_slice()
        } else {
            &mut []
        };
        for (i, e) in encumbrances.iter_mut().enumerate() {
            let field = format!("encumbrances[{i}]");
            self.enumeration::<proto::EncumbranceKind>(&format!("{field}.kind"), e.kind);
            self.credit_code(
                &format!("{field}.holder_credit_code"),
                &mut e.holder_credit_code,
            );
            self.non_negative(&format!("{field}.amount_fen"), e.amount_fen);
            self.past_date(
                &format!("{field}.registered_on"),
                e.registered_on.as_ref(),
                true,
            );
        }
        self.past_date("registered_on", r.registered_on.as_ref(), true);
    }

    pub(super) fn sale_contract(&mut self, r: &mut proto::SaleContract) {
        self.text(
            "contract_number",
            &r.contract_number,
            max_chars::DOCUMENT_NUMBER,
        );
        self.unit("unit_number", &mut r.unit_number);
        let sellers = self.people("seller_ids", &mut r.seller_ids);
        let buyers = self.people("buyer_ids", &mut r.buyer_ids);
        if !sellers.is_disjoint(&buyers) {
            self.fail("buyer_ids", "must not name a seller");
        }
        self.positive("price_fen", r.price_fen);
        self.enumeration::<proto::SaleContractStatus>("status", r.status);
        self.past_date("signed_on", r.signed_on.as_ref(), true);
    }

    pub(super) fn provident_fund_account(&mut self, r: &mut proto::ProvidentFundAccount) {
        self.person("person_id", &mut r.person_id);
        self.text(
            "account_number",
            &r.account_number,
            max_chars::ACCOUNT_NUMBER,
        );
        self.division("region_code", &mut r.region_code);
        self.optional_credit_code("employer_credit_code", &mut r.employer_credit_code);
        self.enumeration::<proto::AccountStatus>("status", r.status);
        self.non_negative("balance_fen", r.balance_fen);
        self.non_negative("monthly_deposit_fen", r.monthly_deposit_fen);
        let opened = self.past_date("opened_on", r.opened_on.as_ref(), true);
        self.deposit_run(r, opened.map(|d| d.year_month()));
    }

    /// The unbroken run of deposits an account reports: both fields or neither, the last
    /// month not after the current one, and the run not starting before the account was
    /// opened (`opened`, when valid). Loan checks count this run, so a run that cannot be
    /// is refused at the source rather than counted.
    fn deposit_run(&mut self, r: &proto::ProvidentFundAccount, opened: Option<YearMonth>) {
        let months = r.consecutive_deposit_months;
        let Some(last) = r.last_deposit_month.as_ref() else {
            if months != 0 {
                self.fail(
                    "consecutive_deposit_months",
                    "must be 0 when last_deposit_month is unset",
                );
            }
            return;
        };
        let last = match YearMonth::new(last.year, u32::try_from(last.month).unwrap_or(0)) {
            Ok(last) => last,
            Err(e) => return self.fail("last_deposit_month", e.to_string()),
        };
        let current = self.horizon.latest_day().year_month();
        if last > current {
            self.fail(
                "last_deposit_month",
                format!("must not be after the current month ({current} in China)"),
            );
        }
        if !(1..=MAX_DEPOSIT_RUN_MONTHS).contains(&months) {
            return self.fail(
                "consecutive_deposit_months",
                format!("must be 1 to {MAX_DEPOSIT_RUN_MONTHS} when last_deposit_month is set"),
            );
        }
        let month_index = |m: YearMonth| m.year() * 12 + m.month() as i32 - 1;
        if let Some(opened) = opened
            && month_index(last) - (months as i32) + 1 < month_index(opened)
        {
            self.fail(
                "consecutive_deposit_months",
                format!("the run ending {last} would start before opened_on ({opened})"),
            );
        }
    }

    pub(super) fn provident_fund_loan(&mut self, r: &mut proto::ProvidentFundLoan) {
        self.person("borrower_id", &mut r.borrower_id);
        self.text(
            "loan_contract_number",
            &r.loan_contract_number,
            max_chars::DOCUMENT_NUMBER,
        );
        self.unit("unit_number", &mut r.unit_number);
        self.positive("principal_fen", r.principal_fen);
        if r.outstanding_principal_fen < 0 || r.outstanding_principal_fen > r.principal_fen {
            self.fail(
                "outstanding_principal_fen",
                "must be between 0 and principal_fen",
            );
        }
        let status = self.enumeration::<proto::LoanStatus>("status", r.status);
        if status == Some(proto::LoanStatus::Settled) && r.outstanding_principal_fen != 0 {
            self.fail(
                "outstanding_principal_fen",
                "must be 0 when status is SETTLED",
            );
        }
        self.past_date("issued_on", r.issued_on.as_ref(), true);
    }
}
