//! Field-by-field validation of records. Every rule names the field it failed on, so an
//! agency gets `INVALID_ARGUMENT` with a field violation it can act on.

use std::collections::HashSet;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost_types::Timestamp;

use super::{RecordType, is_valid_record_id};
use crate::domain::{CivilDate, CreditCode, DivisionCode, ResidentId, Sex, UnitNumber, YearMonth};
use crate::proto::{self, Agency, Op, RecordEvent, record_event::Payload};

/// The most entries a repeated field of a record may hold (owners, buyers, encumbrances).
const MAX_REPEATED: usize = 64;
/// The most violations one request collects: enough to fix a request in a round or two,
/// few enough that bad input costs bounded work and the answer fits in HTTP/2 headers.
pub const MAX_VIOLATIONS: usize = 50;

/// One broken rule on one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The field's path in the request, e.g. `record.owners[1].person_id`.
    pub field: String,
    /// The rule it broke, in words.
    pub description: String,
}

/// The rules a request broke; empty when it is valid. Keeps the first
/// [`MAX_VIOLATIONS`] and only counts the rest, so input cannot grow it without bound.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Violations {
    kept: Vec<FieldViolation>,
    /// Violations found after `kept` was full: counted, not kept.
    omitted: usize,
}

impl Violations {
    /// Records a broken rule (only counts it once [`MAX_VIOLATIONS`] are kept).
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        if self.is_full() {
            self.omitted += 1;
            return;
        }
        self.kept.push(FieldViolation {
            field: field.into(),
            description: description.into(),
        });
    }

    /// How many rules were found broken, kept or not.
    pub fn len(&self) -> usize {
        self.kept.len() + self.omitted
    }

    /// Whether no rule was broken.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether [`MAX_VIOLATIONS`] are kept: a caller checking many items stops here,
    /// since further violations would only be counted.
    pub fn is_full(&self) -> bool {
        self.kept.len() >= MAX_VIOLATIONS
    }

    /// The broken rules kept, in the order they were found.
    pub fn iter(&self) -> impl Iterator<Item = &FieldViolation> {
        self.kept.iter()
    }

    /// `Ok` when nothing was broken.
    pub fn into_result(self) -> Result<(), Violations> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl fmt::Display for FieldViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.description)
    }
}

impl fmt::Display for Violations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.kept.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{v}")?;
        }
        if self.omitted > 0 {
            write!(f, "; and {} more", self.omitted)?;
        }
        Ok(())
    }
}

/// How far ahead of now a record may speak: the latest instant and civil date an agency
/// may name, i.e. now plus the clock skew allowed between its clock and ours. Civil dates
/// are compared with China's date (UTC+8) at that instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Horizon {
    /// Seconds since the Unix epoch.
    latest_secs: i64,
    latest_day: CivilDate,
}

impl Horizon {
    /// Nothing lies beyond it: for events an adapter already accepted (see `validate_event`).
    pub const UNBOUNDED: Horizon = Horizon {
        latest_secs: i64::MAX,
        latest_day: CivilDate::MAX,
    };

    /// The horizon seen at `now`, allowing `max_skew` between clocks.
    pub fn at(now: SystemTime, max_skew: Duration) -> Horizon {
        let now_secs = match now.duration_since(UNIX_EPOCH) {
            Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
            Err(before) => i64::try_from(before.duration().as_secs()).map_or(i64::MIN, |s| -s),
        };
        let skew = i64::try_from(max_skew.as_secs()).unwrap_or(i64::MAX);
        let latest_secs = now_secs.saturating_add(skew);
        Horizon {
            latest_secs,
            latest_day: CivilDate::in_china_at(latest_secs),
        }
    }

    /// The horizon by the system clock, allowing `max_skew` between clocks.
    pub fn now(max_skew: Duration) -> Horizon {
        Horizon::at(SystemTime::now(), max_skew)
    }

    /// The latest civil date a record may name.
    pub fn latest_day(&self) -> CivilDate {
        self.latest_day
    }
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

/// Checks what an agency says about a change: record id, version, times (none beyond
/// `horizon`).
pub fn validate_meta(
    meta: Option<&proto::PublishMeta>,
    path: &str,
    horizon: &Horizon,
    v: &mut Violations,
) {
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
        horizon,
        v,
    );
}

/// Checks a record payload field by field, including rules across fields. Dates of things
/// that have already happened (signed, registered, issued, born, ...) must not lie beyond
/// `horizon`.
pub fn validate_payload(payload: &Payload, path: &str, horizon: &Horizon, v: &mut Violations) {
    let mut c = Check { path, horizon, v };
    match payload {
        Payload::Enrollment(r) => {
            c.person("person_id", &r.person_id);
            c.enumeration::<proto::InsuranceType>("insurance_type", r.insurance_type);
            c.division("region_code", &r.region_code);
            c.optional_credit_code("employer_credit_code", &r.employer_credit_code);
            c.enumeration::<proto::EnrollmentStatus>("status", r.status);
            let start = c.past_date("start_date", r.start_date.as_ref(), true);
            // An end date may lie ahead: an employer reports a leaver before the last day
            // (contributions stop at month end), and the source holds that scheduled end
            // as fact. Only its order against start_date is checked.
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
                    match YearMonth::new(p.year, month) {
                        Err(e) => c.fail("period", e.to_string()),
                        // A later month is a typo (2062 for 2026), and it would inflate the
                        // contribution months that transfer checks count.
                        Ok(period) if period > c.horizon.latest_day().year_month() => c.fail(
                            "period",
                            format!(
                                "must not be after the current month ({} in China)",
                                c.horizon.latest_day().year_month()
                            ),
                        ),
                        Ok(_) => {}
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
            c.past_date("issued_on", r.issued_on.as_ref(), true);
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
            let birth = c.past_date("birth_date", r.birth_date.as_ref(), true);
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
            c.past_date("registered_on", r.registered_on.as_ref(), true);
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
            if c.at_most("owners", r.owners.len()) {
                c.owners(&r.owners);
            }
            if r.floor_area_dm2 == 0 {
                c.fail("floor_area_dm2", "must be more than zero");
            }
            let encumbrances = if c.at_most("encumbrances", r.encumbrances.len()) {
                r.encumbrances.as_slice()
            } else {
                &[]
            };
            for (i, e) in encumbrances.iter().enumerate() {
                let field = format!("encumbrances[{i}]");
                c.enumeration::<proto::EncumbranceKind>(&format!("{field}.kind"), e.kind);
                c.credit_code(
                    &format!("{field}.holder_credit_code"),
                    &e.holder_credit_code,
                );
                c.non_negative(&format!("{field}.amount_fen"), e.amount_fen);
                c.past_date(
                    &format!("{field}.registered_on"),
                    e.registered_on.as_ref(),
                    true,
                );
            }
            c.past_date("registered_on", r.registered_on.as_ref(), true);
        }
        Payload::SaleContract(r) => {
            c.text("contract_number", &r.contract_number, 64);
            c.unit("unit_number", &r.unit_number);
            let sellers = c.people("seller_ids", &r.seller_ids);
            let buyers = c.people("buyer_ids", &r.buyer_ids);
            if !sellers.is_disjoint(&buyers) {
                c.fail("buyer_ids", "must not name a seller");
            }
            c.positive("price_fen", r.price_fen);
            c.enumeration::<proto::SaleContractStatus>("status", r.status);
            c.past_date("signed_on", r.signed_on.as_ref(), true);
        }
        Payload::ProvidentFundAccount(r) => {
            c.person("person_id", &r.person_id);
            c.text("account_number", &r.account_number, 32);
            c.division("region_code", &r.region_code);
            c.optional_credit_code("employer_credit_code", &r.employer_credit_code);
            c.enumeration::<proto::AccountStatus>("status", r.status);
            c.non_negative("balance_fen", r.balance_fen);
            c.non_negative("monthly_deposit_fen", r.monthly_deposit_fen);
            c.past_date("opened_on", r.opened_on.as_ref(), true);
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
            c.past_date("issued_on", r.issued_on.as_ref(), true);
        }
    }
}

/// Checks an event read from a record topic of `topic_agency`, as the adapter checked it
/// before publishing, except that no date is refused for lying in the future: the adapter
/// checked that against its own clock, ours may lag it, and refusing would dead-letter an
/// acknowledged record. Returns its record type.
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
            validate_payload(payload, "payload", &Horizon::UNBOUNDED, &mut v);
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
    /// The latest date a record may name.
    horizon: &'a Horizon,
    v: &'a mut Violations,
}

impl Check<'_> {
    fn fail(&mut self, field: &str, description: impl Into<String>) {
        self.v.add(join(self.path, field), description);
    }

    /// A resident ID whose birth date is not beyond the horizon.
    fn person(&mut self, field: &str, value: &str) -> Option<ResidentId> {
        ResidentId::parse_as_of(value, self.horizon.latest_day())
            .map_err(|e| self.fail(field, format!("not a resident ID number: {e}")))
            .ok()
    }

    /// A list of distinct people; empty (entries unchecked) when it is longer than allowed.
    fn people(&mut self, field: &str, values: &[String]) -> HashSet<ResidentId> {
        if values.is_empty() {
            self.fail(field, "must name at least one person");
        }
        let mut people = HashSet::new();
        if !self.at_most(field, values.len()) {
            return people;
        }
        for (i, value) in values.iter().enumerate() {
            let item = format!("{field}[{i}]");
            if let Some(id) = self.person(&item, value)
                && !people.insert(id)
            {
                self.fail(&item, "names a person twice");
            }
        }
        people
    }

    /// The owners of a title (at most `MAX_REPEATED`): distinct people whose shares add
    /// up to the whole.
    fn owners(&mut self, owners: &[proto::Owner]) {
        let mut seen = HashSet::new();
        let mut shares: u64 = 0;
        for (i, owner) in owners.iter().enumerate() {
            let field = format!("owners[{i}].person_id");
            if let Some(id) = self.person(&field, &owner.person_id)
                && !seen.insert(id)
            {
                self.fail(&field, "names an owner twice");
            }
            if owner.share_basis_points == 0 || owner.share_basis_points > 10_000 {
                self.fail(
                    &format!("owners[{i}].share_basis_points"),
                    "must be between 1 and 10000",
                );
            }
            shares += u64::from(owner.share_basis_points);
        }
        if !owners.is_empty() && shares != 10_000 {
            self.fail(
                "owners",
                format!("shares must add up to 10000 basis points, not {shares}"),
            );
        }
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

    /// Whether a repeated field is within its limit; one violation when it is not, so a
    /// caller skips its entries rather than checking (and reporting) each one.
    fn at_most(&mut self, field: &str, len: usize) -> bool {
        if len > MAX_REPEATED {
            self.fail(
                field,
                format!("must have at most {MAX_REPEATED} entries, not {len}"),
            );
            return false;
        }
        true
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

    /// A date of something that has happened (signed, issued, born): not beyond the horizon.
    fn past_date(
        &mut self,
        field: &str,
        value: Option<&proto::Date>,
        required: bool,
    ) -> Option<CivilDate> {
        let date = self.date(field, value, required)?;
        let latest = self.horizon.latest_day();
        if date > latest {
            self.fail(
                field,
                format!("must not be in the future (after {latest} in China)"),
            );
            return None;
        }
        Some(date)
    }
}

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

fn timestamp(ts: Option<&Timestamp>, field: &str, horizon: &Horizon, v: &mut Violations) {
    let Some(ts) = ts else {
        v.add(field, "is required");
        return;
    };
    if !(0..1_000_000_000).contains(&ts.nanos) {
        v.add(field, "nanos must be between 0 and 999999999");
        return;
    }
    if ts.seconds > horizon.latest_secs {
        v.add(field, "must not be in the future");
    } else if ts.seconds < -2_208_988_800 {
        // Before 1900: no change of a living record is that old; a sign of a unit mix-up.
        v.add(field, "must not be before 1900-01-01");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::resident_id::check_character;

    const UNIT: &str = "110105001002GB00017F00030201";

    fn person(first17: &str) -> String {
        format!("{first17}{}", check_character(first17))
    }

    /// The `n`-th of many distinct people born on 1980-03-12.
    fn nth_person(n: usize) -> String {
        person(&format!("11010519800312{n:03}"))
    }

    fn date(d: CivilDate) -> Option<proto::Date> {
        Some(proto::Date {
            year: d.year(),
            month: i32::try_from(d.month()).unwrap(),
            day: i32::try_from(d.day()).unwrap(),
        })
    }

    fn day(year: i32, month: u32, d: u32) -> CivilDate {
        CivilDate::new(year, month, d).unwrap()
    }

    /// 2026-11-27T15:30:00Z: 23:30 on the 27th in China.
    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_795_793_400)
    }

    fn contract(sellers: Vec<String>, buyers: Vec<String>) -> proto::SaleContract {
        proto::SaleContract {
            contract_number: "WQ-1".into(),
            unit_number: UNIT.into(),
            seller_ids: sellers,
            buyer_ids: buyers,
            price_fen: 1,
            status: proto::SaleContractStatus::Signed as i32,
            signed_on: date(day(2026, 11, 20)),
        }
    }

    fn check(payload: &Payload, horizon: &Horizon) -> Vec<(String, String)> {
        let mut v = Violations::default();
        validate_payload(payload, "record", horizon, &mut v);
        v.iter()
            .map(|v| (v.field.clone(), v.description.clone()))
            .collect()
    }

    fn fields(payload: &Payload, horizon: &Horizon) -> Vec<String> {
        check(payload, horizon)
            .into_iter()
            .map(|(f, _)| f)
            .collect()
    }

    #[test]
    fn violations_keep_the_first_fifty_and_count_the_rest() {
        let mut v = Violations::default();
        for i in 0..MAX_VIOLATIONS + 10 {
            assert_eq!(v.is_full(), i >= MAX_VIOLATIONS);
            v.add(format!("f{i}"), "broken");
        }
        assert_eq!(v.len(), MAX_VIOLATIONS + 10);
        assert_eq!(v.iter().count(), MAX_VIOLATIONS);
        assert_eq!(v.iter().last().unwrap().field, "f49");
        let text = v.to_string();
        assert!(text.starts_with("f0: broken; f1: broken"), "{text}");
        assert!(text.ends_with("f49: broken; and 10 more"), "{text}");
        assert!(v.into_result().is_err());
    }

    #[test]
    fn an_oversized_repeated_field_is_one_violation_and_its_entries_are_not_checked() {
        let horizon = Horizon::at(now(), Duration::ZERO);
        // 200k copies of one ID and garbage: checking entries would report thousands.
        let mut buyers = vec![nth_person(1); 100_000];
        buyers.extend(std::iter::repeat_n("garbage".to_owned(), 100_000));
        let sellers: Vec<String> = (0..65).map(|_| "x".into()).collect();
        let found = check(&Payload::SaleContract(contract(sellers, buyers)), &horizon);
        assert_eq!(
            found,
            vec![
                (
                    "record.seller_ids".to_owned(),
                    "must have at most 64 entries, not 65".to_owned()
                ),
                (
                    "record.buyer_ids".to_owned(),
                    "must have at most 64 entries, not 200000".to_owned()
                ),
            ]
        );

        let owners = vec![
            proto::Owner {
                person_id: "x".into(),
                share_basis_points: 0,
            };
            1_000
        ];
        let title = proto::PropertyTitle {
            unit_number: UNIT.into(),
            certificate_number: "C-1".into(),
            address: "Room 1".into(),
            owners,
            floor_area_dm2: 1,
            encumbrances: vec![proto::Encumbrance::default(); 65],
            registered_on: date(day(2008, 5, 20)),
        };
        assert_eq!(
            fields(&Payload::PropertyTitle(title), &horizon),
            ["record.owners", "record.encumbrances"]
        );
    }

    #[test]
    fn duplicates_are_found_within_and_across_lists() {
        let horizon = Horizon::at(now(), Duration::ZERO);
        let (a, b, c) = (nth_person(1), nth_person(2), nth_person(3));
        let twice = contract(vec![a.clone(), b.clone(), a.clone()], vec![c.clone()]);
        assert_eq!(
            check(&Payload::SaleContract(twice), &horizon),
            [(
                "record.seller_ids[2]".to_owned(),
                "names a person twice".to_owned()
            )]
        );
        let overlap = contract(vec![a.clone(), b.clone()], vec![c.clone(), b.clone()]);
        assert_eq!(
            fields(&Payload::SaleContract(overlap), &horizon),
            ["record.buyer_ids"]
        );
        // Every entry is checked up to the limit: 64 distinct buyers pass.
        let many: Vec<String> = (10..74).map(nth_person).collect();
        let ok = contract(vec![a.clone()], many);
        assert_eq!(
            fields(&Payload::SaleContract(ok), &horizon),
            [] as [&str; 0]
        );

        let owner = |id: &str, share| proto::Owner {
            person_id: id.into(),
            share_basis_points: share,
        };
        let title = proto::PropertyTitle {
            unit_number: UNIT.into(),
            certificate_number: "C-1".into(),
            address: "Room 1".into(),
            owners: vec![owner(&a, 5_000), owner(&b, 2_500), owner(&a, 2_500)],
            floor_area_dm2: 1,
            encumbrances: vec![],
            registered_on: date(day(2008, 5, 20)),
        };
        assert_eq!(
            check(&Payload::PropertyTitle(title), &horizon),
            [(
                "record.owners[2].person_id".to_owned(),
                "names an owner twice".to_owned()
            )]
        );
    }

    #[test]
    fn the_horizon_is_chinas_date_after_the_allowed_skew() {
        // 23:30 in China: without skew it is still the 27th, an hour's skew reaches the 28th.
        assert_eq!(
            Horizon::at(now(), Duration::ZERO).latest_day(),
            day(2026, 11, 27)
        );
        assert_eq!(
            Horizon::at(now(), Duration::from_secs(3600)).latest_day(),
            day(2026, 11, 28)
        );
        assert_eq!(
            Horizon::at(
                UNIX_EPOCH - Duration::from_secs(86_400 * 365),
                Duration::ZERO
            )
            .latest_day(),
            day(1969, 1, 1)
        );
    }

    /// Every date of a past event, in each record type, with the latest allowed date
    /// accepted and the day after refused.
    #[test]
    fn dates_of_past_events_must_not_lie_beyond_the_horizon() {
        let horizon = Horizon::at(now(), Duration::ZERO);
        let today = horizon.latest_day();
        let tomorrow = day(2026, 11, 28);
        let a = nth_person(1);
        type Build = Box<dyn Fn(CivilDate) -> Payload>;
        let cases: Vec<(&str, Build)> = vec![
            (
                "record.start_date",
                Box::new(|d| {
                    Payload::Enrollment(proto::Enrollment {
                        person_id: nth_person(1),
                        insurance_type: proto::InsuranceType::Pension as i32,
                        region_code: "110105".into(),
                        employer_credit_code: String::new(),
                        status: proto::EnrollmentStatus::Active as i32,
                        start_date: date(d),
                        end_date: None,
                    })
                }),
            ),
            (
                "record.issued_on",
                Box::new(|d| {
                    Payload::TransferOutCertificate(proto::TransferOutCertificate {
                        person_id: nth_person(1),
                        insurance_type: proto::InsuranceType::Pension as i32,
                        certificate_number: "ZY-1".into(),
                        from_region_code: "110105".into(),
                        to_region_code: "310104".into(),
                        issued_on: date(d),
                        contribution_months: 1,
                        personal_account_balance_fen: 1,
                    })
                }),
            ),
            (
                "record.registered_on",
                Box::new(|d| {
                    Payload::HouseholdRegistration(proto::HouseholdRegistration {
                        person_id: nth_person(1),
                        household_number: "H-1".into(),
                        region_code: "110105".into(),
                        address: "Room 1".into(),
                        status: proto::HouseholdStatus::Registered as i32,
                        property_unit_number: String::new(),
                        registered_on: date(d),
                        destination_region_code: String::new(),
                        destination_address: String::new(),
                    })
                }),
            ),
            (
                "record.encumbrances[0].registered_on",
                Box::new(|d| {
                    Payload::PropertyTitle(proto::PropertyTitle {
                        unit_number: UNIT.into(),
                        certificate_number: "C-1".into(),
                        address: "Room 1".into(),
                        owners: vec![proto::Owner {
                            person_id: nth_person(1),
                            share_basis_points: 10_000,
                        }],
                        floor_area_dm2: 1,
                        encumbrances: vec![proto::Encumbrance {
                            kind: proto::EncumbranceKind::Seizure as i32,
                            holder_credit_code: "91350100M000100Y43".into(),
                            amount_fen: 0,
                            registered_on: date(d),
                        }],
                        registered_on: date(day(2008, 5, 20)),
                    })
                }),
            ),
            (
                "record.signed_on",
                Box::new(|d| {
                    Payload::SaleContract(proto::SaleContract {
                        signed_on: date(d),
                        ..contract(vec![nth_person(1)], vec![nth_person(2)])
                    })
                }),
            ),
            (
                "record.opened_on",
                Box::new(|d| {
                    Payload::ProvidentFundAccount(proto::ProvidentFundAccount {
                        person_id: nth_person(1),
                        account_number: "A-1".into(),
                        region_code: "110105".into(),
                        employer_credit_code: String::new(),
                        status: proto::AccountStatus::Active as i32,
                        balance_fen: 0,
                        monthly_deposit_fen: 0,
                        opened_on: date(d),
                    })
                }),
            ),
            (
                "record.issued_on",
                Box::new(|d| {
                    Payload::ProvidentFundLoan(proto::ProvidentFundLoan {
                        borrower_id: nth_person(1),
                        loan_contract_number: "L-1".into(),
                        unit_number: UNIT.into(),
                        principal_fen: 1,
                        outstanding_principal_fen: 1,
                        status: proto::LoanStatus::Repaying as i32,
                        issued_on: date(d),
                    })
                }),
            ),
        ];
        for (field, build) in &cases {
            assert_eq!(fields(&build(today), &horizon), [] as [&str; 0], "{field}");
            let found = check(&build(tomorrow), &horizon);
            assert_eq!(
                found,
                [(
                    (*field).to_owned(),
                    "must not be in the future (after 2026-11-27 in China)".to_owned()
                )],
                "{field}"
            );
            // An event an adapter accepted is never refused for its dates.
            let far = build(CivilDate::MAX);
            assert_eq!(
                fields(&far, &Horizon::UNBOUNDED),
                [] as [&str; 0],
                "{field}"
            );
            // The skew allowance moves the horizon to the 28th.
            let skewed = Horizon::at(now(), Duration::from_secs(3600));
            assert_eq!(
                fields(&build(tomorrow), &skewed),
                [] as [&str; 0],
                "{field}"
            );
        }

        // A birth date, and the birth date in a resident ID, of tomorrow.
        let born_tomorrow = person("11010520261128001");
        let identity = |id: &str, born| {
            Payload::Identity(proto::Identity {
                person_id: id.to_owned(),
                name: "N".into(),
                sex: proto::Sex::Male as i32,
                birth_date: date(born),
            })
        };
        assert_eq!(
            fields(&identity(&born_tomorrow, tomorrow), &horizon),
            ["record.person_id", "record.birth_date"]
        );
        assert_eq!(
            fields(&identity(&born_tomorrow, tomorrow), &Horizon::UNBOUNDED),
            [] as [&str; 0]
        );
        assert_eq!(
            fields(&identity(&a, day(1980, 3, 12)), &horizon),
            [] as [&str; 0]
        );
    }

    #[test]
    fn an_enrollment_may_end_in_the_future_but_not_before_it_starts() {
        let horizon = Horizon::at(now(), Duration::ZERO);
        let enrollment = |end| {
            Payload::Enrollment(proto::Enrollment {
                person_id: nth_person(1),
                insurance_type: proto::InsuranceType::Pension as i32,
                region_code: "110105".into(),
                employer_credit_code: String::new(),
                status: proto::EnrollmentStatus::Active as i32,
                start_date: date(day(2015, 7, 1)),
                end_date: date(end),
            })
        };
        assert_eq!(
            fields(&enrollment(day(2026, 12, 31)), &horizon),
            [] as [&str; 0]
        );
        assert_eq!(
            fields(&enrollment(day(2015, 6, 30)), &horizon),
            ["record.end_date"]
        );
    }

    #[test]
    fn a_contribution_period_must_not_be_after_the_current_month() {
        let period = |year, month| {
            Payload::ContributionPeriod(proto::ContributionPeriod {
                person_id: nth_person(1),
                insurance_type: proto::InsuranceType::Pension as i32,
                region_code: "110105".into(),
                employer_credit_code: String::new(),
                period: Some(proto::YearMonth { year, month }),
                base_fen: 1,
                personal_fen: 1,
                employer_fen: 1,
            })
        };
        let horizon = Horizon::at(now(), Duration::ZERO);
        assert_eq!(fields(&period(2026, 11), &horizon), [] as [&str; 0]);
        assert_eq!(
            check(&period(2026, 12), &horizon),
            [(
                "record.period".to_owned(),
                "must not be after the current month (2026-11 in China)".to_owned()
            )]
        );
        assert_eq!(fields(&period(2062, 1), &horizon), ["record.period"]);
        assert_eq!(
            fields(&period(2062, 1), &Horizon::UNBOUNDED),
            [] as [&str; 0]
        );
        // On the last evening of a month the skew reaches into the next one.
        let end_of_month = UNIX_EPOCH + Duration::from_secs(1_798_731_000); // 2026-12-31T23:30+08
        let skewed = Horizon::at(end_of_month, Duration::from_secs(3600));
        assert_eq!(fields(&period(2027, 1), &skewed), [] as [&str; 0]);
        assert_eq!(
            fields(&period(2027, 1), &Horizon::at(end_of_month, Duration::ZERO)),
            ["record.period"]
        );
    }

    #[test]
    fn occurred_at_may_lie_ahead_by_the_skew_only() {
        let meta = |secs| proto::PublishMeta {
            record_id: "r-1".into(),
            version: 1,
            source_event_id: String::new(),
            occurred_at: Some(Timestamp {
                seconds: secs,
                nanos: 0,
            }),
        };
        let now_secs = 1_795_793_400;
        let horizon = Horizon::at(now(), Duration::from_secs(600));
        let fields = |m: &proto::PublishMeta| {
            let mut v = Violations::default();
            validate_meta(Some(m), "meta", &horizon, &mut v);
            v.iter().map(|v| v.field.clone()).collect::<Vec<_>>()
        };
        assert!(fields(&meta(now_secs + 600)).is_empty());
        assert_eq!(fields(&meta(now_secs + 601)), ["meta.occurred_at"]);
        assert_eq!(fields(&meta(-2_208_988_801)), ["meta.occurred_at"]);
    }
}
