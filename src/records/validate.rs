//! Field-by-field validation of records. Every rule names the field it failed on, so an
//! agency gets `INVALID_ARGUMENT` with a field violation it can act on.

use std::fmt;

use prost_types::Timestamp;

use super::{RecordType, is_valid_record_id};
use crate::domain::{CivilDate, CreditCode, DivisionCode, ResidentId, Sex, UnitNumber, YearMonth};
use crate::proto::{self, Agency, Op, RecordEvent, record_event::Payload};

/// The most entries a repeated field of a record may hold (owners, buyers, encumbrances).
const MAX_REPEATED: usize = 64;
/// How far in the future `occurred_at` may lie, for clock skew between agencies and us.
const MAX_CLOCK_SKEW_SECS: i64 = 3600;

/// One broken rule on one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The field's path in the request, e.g. `record.owners[1].person_id`.
    pub field: String,
    /// The rule it broke, in words.
    pub description: String,
}

/// The rules a request broke; empty when it is valid.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    /// Records a broken rule.
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation {
            field: field.into(),
            description: description.into(),
        });
    }

    /// How many rules were broken.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no rule was broken.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The broken rules, in the order they were found.
    pub fn iter(&self) -> impl Iterator<Item = &FieldViolation> {
        self.0.iter()
    }

    /// `Ok` when nothing was broken.
    pub fn into_result(self) -> Result<(), Violations> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl fmt::Display for Violations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", v.field, v.description)?;
        }
        Ok(())
    }
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

/// Checks what an agency says about a change: record id, version, times.
pub fn validate_meta(meta: Option<&proto::PublishMeta>, path: &str, v: &mut Violations) {
    let Some(meta) = meta else {
        v.add(path, "is required");
        return;
    };
    if !is_valid_record_id(&meta.record_id) {
        v.add(
            join(path, "record_id"),
            "must be 1 to 64 characters of A-Z a-z 0-9 . _ : -",
        );
    }
    if meta.version == 0 {
        v.add(join(path, "version"), "must be at least 1");
    }
    if meta.source_event_id.chars().count() > 128 || has_control(&meta.source_event_id) {
        v.add(
            join(path, "source_event_id"),
            "must be at most 128 characters without control characters",
        );
    }
    timestamp(
        meta.occurred_at.as_ref(),
        &join(path, "occurred_at"),
        true,
        v,
    );
}

/// Checks a record payload field by field, including rules across fields.
pub fn validate_payload(payload: &Payload, path: &str, v: &mut Violations) {
    let mut c = Check { path, v };
    match payload {
        Payload::Enrollment(r) => {
            c.person("person_id", &r.person_id);
            c.enumeration::<proto::InsuranceType>("insurance_type", r.insurance_type);
            c.division("region_code", &r.region_code);
            c.optional_credit_code("employer_credit_code", &r.employer_credit_code);
            c.enumeration::<proto::EnrollmentStatus>("status", r.status);
            let start = c.date("start_date", r.start_date.as_ref(), true);
            let end = c.date("end_date", r.end_date.as_ref(), false);
            if let (Some(start), Some(end)) = (start, end)
                && end < start
            {
                c.fail("end_date", "must not be before start_date");
            }
        }
        Payload::ContributionPeriod(r) => {
            c.person("person_id", &r.person_id);
            c.enumeration::<proto::InsuranceType>("insurance_type", r.insurance_type);
            c.division("region_code", &r.region_code);
            c.optional_credit_code("employer_credit_code", &r.employer_credit_code);
            match r.period.as_ref() {
                None => c.fail("period", "is required"),
                Some(p) => {
                    let month = u32::try_from(p.month).unwrap_or(0);
                    if let Err(e) = YearMonth::new(p.year, month) {
                        c.fail("period", e.to_string());
                    }
                }
            }
            c.non_negative("base_fen", r.base_fen);
            c.non_negative("personal_fen", r.personal_fen);
            c.non_negative("employer_fen", r.employer_fen);
        }
        Payload::TransferOutCertificate(r) => {
            c.person("person_id", &r.person_id);
            c.enumeration::<proto::InsuranceType>("insurance_type", r.insurance_type);
            c.text("certificate_number", &r.certificate_number, 64);
            let from = c.division("from_region_code", &r.from_region_code);
            let to = c.division("to_region_code", &r.to_region_code);
            if let (Some(from), Some(to)) = (from, to)
                && from == to
            {
                c.fail("to_region_code", "must differ from from_region_code");
            }
            c.date("issued_on", r.issued_on.as_ref(), true);
            c.non_negative("contribution_months", i64::from(r.contribution_months));
            c.non_negative(
                "personal_account_balance_fen",
                r.personal_account_balance_fen,
            );
        }
        Payload::Identity(r) => {
            let id = c.person("person_id", &r.person_id);
            c.text("name", &r.name, 64);
            let sex = c.enumeration::<proto::Sex>("sex", r.sex);
            let birth = c.date("birth_date", r.birth_date.as_ref(), true);
            if let Some(id) = id {
                if birth.is_some_and(|b| b != id.birth_date()) {
                    c.fail("birth_date", "must equal the birth date in person_id");
                }
                let id_sex = match id.sex() {
                    Sex::Male => proto::Sex::Male,
                    Sex::Female => proto::Sex::Female,
                };
                if sex.is_some_and(|s| s != id_sex) {
                    c.fail(
                        "sex",
                        "must agree with the sex digit of person_id (odd male, even female)",
                    );
                }
            }
        }
        Payload::HouseholdRegistration(r) => {
            c.person("person_id", &r.person_id);
            c.text("household_number", &r.household_number, 32);
            c.division("region_code", &r.region_code);
            c.text("address", &r.address, 256);
            let status = c.enumeration::<proto::HouseholdStatus>("status", r.status);
            if !r.property_unit_number.is_empty() {
                c.unit("property_unit_number", &r.property_unit_number);
            }
            c.date("registered_on", r.registered_on.as_ref(), true);
            if status == Some(proto::HouseholdStatus::MovedOut) {
                c.division("destination_region_code", &r.destination_region_code);
            } else if !r.destination_region_code.is_empty() {
                c.fail(
                    "destination_region_code",
                    "must be empty unless status is MOVED_OUT",
                );
            }
            c.optional_text("destination_address", &r.destination_address, 256);
        }
        Payload::PropertyTitle(r) => {
            c.unit("unit_number", &r.unit_number);
            c.text("certificate_number", &r.certificate_number, 64);
            c.text("address", &r.address, 256);
            if r.owners.is_empty() {
                c.fail("owners", "must name at least one owner");
            }
            c.at_most("owners", r.owners.len());
            let mut owners = Vec::new();
            let mut shares: u64 = 0;
            for (i, owner) in r.owners.iter().enumerate() {
                let field = format!("owners[{i}]");
                if let Some(id) = c.person(&format!("{field}.person_id"), &owner.person_id) {
                    if owners.contains(&id) {
                        c.fail(&format!("{field}.person_id"), "names an owner twice");
                    }
                    owners.push(id);
                }
                if owner.share_basis_points == 0 || owner.share_basis_points > 10_000 {
                    c.fail(
                        &format!("{field}.share_basis_points"),
                        "must be between 1 and 10000",
                    );
                }
                shares += u64::from(owner.share_basis_points);
            }
            if !r.owners.is_empty() && shares != 10_000 {
                c.fail(
                    "owners",
                    format!("shares must add up to 10000 basis points, not {shares}"),
                );
            }
            if r.floor_area_dm2 == 0 {
                c.fail("floor_area_dm2", "must be more than zero");
            }
            c.at_most("encumbrances", r.encumbrances.len());
            for (i, e) in r.encumbrances.iter().enumerate() {
                let field = format!("encumbrances[{i}]");
                c.enumeration::<proto::EncumbranceKind>(&format!("{field}.kind"), e.kind);
                c.credit_code(
                    &format!("{field}.holder_credit_code"),
                    &e.holder_credit_code,
                );
                c.non_negative(&format!("{field}.amount_fen"), e.amount_fen);
                c.date(
                    &format!("{field}.registered_on"),
                    e.registered_on.as_ref(),
                    true,
                );
            }
            c.date("registered_on", r.registered_on.as_ref(), true);
        }
        Payload::SaleContract(r) => {
            c.text("contract_number", &r.contract_number, 64);
            c.unit("unit_number", &r.unit_number);
            let sellers = c.people("seller_ids", &r.seller_ids);
            let buyers = c.people("buyer_ids", &r.buyer_ids);
            if sellers.iter().any(|s| buyers.contains(s)) {
                c.fail("buyer_ids", "must not name a seller");
            }
            c.positive("price_fen", r.price_fen);
            c.enumeration::<proto::SaleContractStatus>("status", r.status);
            c.date("signed_on", r.signed_on.as_ref(), true);
        }
        Payload::ProvidentFundAccount(r) => {
            c.person("person_id", &r.person_id);
            c.text("account_number", &r.account_number, 32);
            c.division("region_code", &r.region_code);
            c.optional_credit_code("employer_credit_code", &r.employer_credit_code);
            c.enumeration::<proto::AccountStatus>("status", r.status);
            c.non_negative("balance_fen", r.balance_fen);
            c.non_negative("monthly_deposit_fen", r.monthly_deposit_fen);
            c.date("opened_on", r.opened_on.as_ref(), true);
        }
        Payload::ProvidentFundLoan(r) => {
            c.person("borrower_id", &r.borrower_id);
            c.text("loan_contract_number", &r.loan_contract_number, 64);
            c.unit("unit_number", &r.unit_number);
            c.positive("principal_fen", r.principal_fen);
            if r.outstanding_principal_fen < 0 || r.outstanding_principal_fen > r.principal_fen {
                c.fail(
                    "outstanding_principal_fen",
                    "must be between 0 and principal_fen",
                );
            }
            let status = c.enumeration::<proto::LoanStatus>("status", r.status);
            if status == Some(proto::LoanStatus::Settled) && r.outstanding_principal_fen != 0 {
                c.fail(
                    "outstanding_principal_fen",
                    "must be 0 when status is SETTLED",
                );
            }
            c.date("issued_on", r.issued_on.as_ref(), true);
        }
    }
}

/// Checks an event read from a record topic of `topic_agency`, as the adapter would have
/// checked it before publishing. Returns its record type.
pub fn validate_event(event: &RecordEvent, topic_agency: Agency) -> Result<RecordType, Violations> {
    let mut v = Violations::default();
    if event.agency != topic_agency as i32 {
        v.add("agency", "does not match the topic's agency");
    }
    let record_type = RecordType::parse(topic_agency, &event.record_type);
    if record_type.is_none() {
        v.add("record_type", "is not a record type of the topic's agency");
    }
    if !is_valid_record_id(&event.record_id) {
        v.add(
            "record_id",
            "must be 1 to 64 characters of A-Z a-z 0-9 . _ : -",
        );
    }
    if event.version == 0 {
        v.add("version", "must be at least 1");
    }
    match (Op::try_from(event.op), &event.payload) {
        (Ok(Op::Upsert), Some(payload)) => {
            if record_type.is_some_and(|t| t != RecordType::of_payload(payload)) {
                v.add("payload", "does not match record_type");
            }
            validate_payload(payload, "payload", &mut v);
        }
        (Ok(Op::Upsert), None) => v.add("payload", "is required for OP_UPSERT"),
        (Ok(Op::Delete), None) => {}
        (Ok(Op::Delete), Some(_)) => v.add("payload", "must be empty for OP_DELETE"),
        _ => v.add("op", "must be OP_UPSERT or OP_DELETE"),
    }
    v.into_result()?;
    record_type.ok_or_else(Violations::default)
}

/// A cursor over one record's fields: knows the path and collects violations.
struct Check<'a> {
    path: &'a str,
    v: &'a mut Violations,
}

impl Check<'_> {
    fn fail(&mut self, field: &str, description: impl Into<String>) {
        self.v.add(join(self.path, field), description);
    }

    fn person(&mut self, field: &str, value: &str) -> Option<ResidentId> {
        ResidentId::parse(value)
            .map_err(|e| self.fail(field, format!("not a resident ID number: {e}")))
            .ok()
    }

    fn people(&mut self, field: &str, values: &[String]) -> Vec<ResidentId> {
        if values.is_empty() {
            self.fail(field, "must name at least one person");
        }
        self.at_most(field, values.len());
        let mut people = Vec::new();
        for (i, value) in values.iter().enumerate() {
            let item = format!("{field}[{i}]");
            if let Some(id) = self.person(&item, value) {
                if people.contains(&id) {
                    self.fail(&item, "names a person twice");
                }
                people.push(id);
            }
        }
        people
    }

    fn division(&mut self, field: &str, value: &str) -> Option<DivisionCode> {
        DivisionCode::parse(value)
            .map_err(|e| self.fail(field, format!("not an administrative division code: {e}")))
            .ok()
    }

    fn credit_code(&mut self, field: &str, value: &str) {
        if let Err(e) = CreditCode::parse(value) {
            self.fail(field, format!("not a unified social credit code: {e}"));
        }
    }

    fn optional_credit_code(&mut self, field: &str, value: &str) {
        if !value.is_empty() {
            self.credit_code(field, value);
        }
    }

    fn unit(&mut self, field: &str, value: &str) {
        if let Err(e) = UnitNumber::parse(value) {
            self.fail(field, format!("not a real-estate unit number: {e}"));
        }
    }

    fn text(&mut self, field: &str, value: &str, max: usize) {
        if value.trim().is_empty() {
            self.fail(field, "is required");
        } else {
            self.optional_text(field, value, max);
        }
    }

    fn optional_text(&mut self, field: &str, value: &str, max: usize) {
        if value.chars().count() > max {
            self.fail(field, format!("must be at most {max} characters"));
        } else if has_control(value) {
            self.fail(field, "must not contain control characters");
        }
    }

    fn at_most(&mut self, field: &str, len: usize) {
        if len > MAX_REPEATED {
            self.fail(field, format!("must have at most {MAX_REPEATED} entries"));
        }
    }

    fn non_negative(&mut self, field: &str, value: i64) {
        if value < 0 {
            self.fail(field, "must not be negative");
        }
    }

    fn positive(&mut self, field: &str, value: i64) {
        if value <= 0 {
            self.fail(field, "must be more than zero");
        }
    }

    /// A known value other than the UNSPECIFIED zero.
    fn enumeration<E: TryFrom<i32>>(&mut self, field: &str, value: i32) -> Option<E> {
        match E::try_from(value) {
            Ok(e) if value != 0 => Some(e),
            Ok(_) => {
                self.fail(field, "is required (UNSPECIFIED is not a value)");
                None
            }
            Err(_) => {
                self.fail(field, format!("{value} is not a known value"));
                None
            }
        }
    }

    fn date(
        &mut self,
        field: &str,
        value: Option<&proto::Date>,
        required: bool,
    ) -> Option<CivilDate> {
        let Some(d) = value else {
            if required {
                self.fail(field, "is required");
            }
            return None;
        };
        let month = u32::try_from(d.month).unwrap_or(0);
        let day = u32::try_from(d.day).unwrap_or(0);
        CivilDate::new(d.year, month, day)
            .map_err(|e| self.fail(field, e.to_string()))
            .ok()
    }
}

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

fn timestamp(ts: Option<&Timestamp>, field: &str, required: bool, v: &mut Violations) {
    let Some(ts) = ts else {
        if required {
            v.add(field, "is required");
        }
        return;
    };
    if !(0..1_000_000_000).contains(&ts.nanos) {
        v.add(field, "nanos must be between 0 and 999999999");
        return;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    if ts.seconds > now.saturating_add(MAX_CLOCK_SKEW_SECS) {
        v.add(field, "must not be in the future");
    } else if ts.seconds < -2_208_988_800 {
        // Before 1900: no change of a living record is that old; a sign of a unit mix-up.
        v.add(field, "must not be before 1900-01-01");
    }
}
