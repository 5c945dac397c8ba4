//! Field-by-field validation of records. Every rule names the field it failed on, so an
//! agency gets `INVALID_ARGUMENT` with a field violation it can act on.

use std::collections::HashSet;
mod payloads;

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost_types::Timestamp;

use super::{RecordType, is_valid_record_id};
use crate::domain::{CivilDate, CreditCode, DivisionCode, ResidentId, UnitNumber};
use crate::proto::{self, Agency, Op, RecordEvent, record_event::Payload};

/// The most entries a repeated field of a record may hold (owners, buyers, encumbrances).
pub const MAX_REPEATED: usize = 64;
/// The most characters of `PublishMeta.source_event_id`.
pub const MAX_SOURCE_EVENT_ID_CHARS: usize = 128;

/// The longest each free-text field of a record may be, in characters. These are part of
/// the record contract (each field's comment in `proto/govlink/v1/` says it): an agency
/// may send anything up to them and rely on it being accepted, so a deployment cannot
/// lower them; the message-size limit and the batch limit bound the work per call.
pub mod max_chars {
    /// `Identity.name`.
    pub const NAME: usize = 64;
    /// `HouseholdRegistration.address` and `destination_address`, `PropertyTitle.address`.
    pub const ADDRESS: usize = 256;
    /// Certificate and contract numbers: `TransferOutCertificate.certificate_number`,
    /// `PropertyTitle.certificate_number`, `SaleContract.contract_number`,
    /// `ProvidentFundLoan.loan_contract_number`.
    pub const DOCUMENT_NUMBER: usize = 64;
    /// `HouseholdRegistration.household_number`, `ProvidentFundAccount.account_number`.
    pub const ACCOUNT_NUMBER: usize = 32;
}
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
    /// Whether a field was longer than the contract allows (counted as a limit).
    too_long: bool,
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

    /// Records that `field` is longer (in characters, or entries) than the contract
    /// allows: a broken rule that is also counted as a refusal by a limit.
    pub fn add_too_long(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.too_long = true;
        self.add(field, description);
    }

    /// Whether a field was longer than the contract allows.
    pub fn too_long(&self) -> bool {
        self.too_long
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
    let source_event_id = join(path, "source_event_id");
    let rule = "must be at most 128 characters without control characters";
    if meta.source_event_id.chars().count() > MAX_SOURCE_EVENT_ID_CHARS {
        v.add_too_long(source_event_id, rule);
    } else if has_control(&meta.source_event_id) {
        v.add(source_event_id, rule);
    }
    timestamp(
        meta.occurred_at.as_ref(),
        &join(path, "occurred_at"),
        horizon,
        v,
    );
}

/// `value` in the one spelling of the identifier it holds: identifiers are normalised once,
/// where they enter, so nothing downstream compares two spellings of one.
fn respell(value: &mut String, canonical: &str) {
    if value != canonical {
        canonical.clone_into(value);
    }
}

/// Checks a record payload field by field, including rules across fields, and writes each
/// valid identifier back in its one spelling (resident IDs, unit numbers and credit codes
/// uppercase). Dates of things that have already happened (signed, registered, issued,
/// born, ...) must not lie beyond `horizon`.
pub fn validate_payload(payload: &mut Payload, path: &str, horizon: &Horizon, v: &mut Violations) {
    let mut c = Check { path, horizon, v };
    match payload {
        Payload::Enrollment(r) => c.enrollment(r),
        Payload::ContributionPeriod(r) => c.contribution_period(r),
        Payload::TransferOutCertificate(r) => c.transfer_out_certificate(r),
        Payload::Identity(r) => c.identity(r),
        Payload::HouseholdRegistration(r) => c.household_registration(r),
        Payload::PropertyTitle(r) => c.property_title(r),
        Payload::SaleContract(r) => c.sale_contract(r),
        Payload::ProvidentFundAccount(r) => c.provident_fund_account(r),
        Payload::ProvidentFundLoan(r) => c.provident_fund_loan(r),
    }
}

/// Checks an event read from a record topic of `topic_agency`, as the adapter checked it
/// before publishing, except that no date is refused for lying in the future: the adapter
/// checked that against its own clock, ours may lag it, and refusing would dead-letter an
/// acknowledged record. Returns its record type. Identifiers in `event` are respelled as
/// they are checked; callers that store the event keep the bytes they decoded it from.
pub fn validate_event(
    event: &mut RecordEvent,
    topic_agency: Agency,
) -> Result<RecordType, Violations> {
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
    match (Op::try_from(event.op), &mut event.payload) {
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

    /// A resident ID whose birth date is not beyond the horizon, written back in its one
    /// spelling (check character uppercase).
    fn person(&mut self, field: &str, value: &mut String) -> Option<ResidentId> {
        let id = ResidentId::parse_as_of(value, self.horizon.latest_day())
            .map_err(|e| self.fail(field, format!("not a resident ID number: {e}")))
            .ok()?;
        respell(value, id.as_str());
        Some(id)
    }

    /// A list of distinct people; empty (entries unchecked) when it is longer than allowed.
    fn people(&mut self, field: &str, values: &mut [String]) -> HashSet<ResidentId> {
        if values.is_empty() {
            self.fail(field, "must name at least one person");
        }
        let mut people = HashSet::new();
        if !self.at_most(field, values.len()) {
            return people;
        }
        for (i, value) in values.iter_mut().enumerate() {
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
    fn owners(&mut self, owners: &mut [proto::Owner]) {
        let mut seen = HashSet::new();
        let mut shares: u64 = 0;
        for (i, owner) in owners.iter_mut().enumerate() {
            let field = format!("owners[{i}].person_id");
            if let Some(id) = self.person(&field, &mut owner.person_id)
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

    fn division(&mut self, field: &str, value: &mut String) -> Option<DivisionCode> {
        let code = DivisionCode::parse(value)
            .map_err(|e| self.fail(field, format!("not an administrative division code: {e}")))
            .ok()?;
        respell(value, code.as_str());
        Some(code)
    }

    fn credit_code(&mut self, field: &str, value: &mut String) {
        match CreditCode::parse(value) {
            Ok(code) => respell(value, code.as_str()),
            Err(e) => self.fail(field, format!("not a unified social credit code: {e}")),
        }
    }

    fn optional_credit_code(&mut self, field: &str, value: &mut String) {
        if !value.is_empty() {
            self.credit_code(field, value);
        }
    }

    fn unit(&mut self, field: &str, value: &mut String) {
        match UnitNumber::parse(value) {
            Ok(unit) => respell(value, unit.as_str()),
            Err(e) => self.fail(field, format!("not a real-estate unit number: {e}")),
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
            self.v.add_too_long(
                join(self.path, field),
                format!("must be at most {max} characters"),
            );
        } else if has_control(value) {
            self.fail(field, "must not contain control characters");
        }
    }

    /// Whether a repeated field is within its limit; one violation when it is not, so a
    /// caller skips its entries rather than checking (and reporting) each one.
    fn at_most(&mut self, field: &str, len: usize) -> bool {
        if len > MAX_REPEATED {
            self.v.add_too_long(
                join(self.path, field),
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
mod tests;
