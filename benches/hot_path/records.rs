//! Records as agencies send them: a valid payload of every record type (fictional people,
//! correct check characters, dates in the past), one payload breaking several rules, and
//! the envelope an adapter wraps a payload in before it publishes it.

use std::time::SystemTime;

use govlink::domain::resident_id::check_character;
use govlink::proto::{self, Date, PublishMeta, RecordEvent, record_event::Payload};
use govlink::records::{RecordKey, RecordType, subjects_of};

/// A valid, fictional resident ID number from its first 17 digits.
pub(crate) fn person(first17: &str) -> String {
    format!("{first17}{}", check_character(first17))
}

/// Eight people; the 17th digit is odd for men, even for women (the identity record
/// agrees with it).
pub(crate) const PEOPLE: [&str; 8] = [
    "11010519800312001",
    "31010419900521002",
    "44030519750101003",
    "11010819850704024",
    "32050219920215015",
    "51010719880930006",
    "33010619790111017",
    "42010219950606028",
];

/// Four flats in Beijing's Chaoyang (28-character real-estate unit numbers).
pub(crate) const UNITS: [&str; 4] = [
    "110105001002GB00017F00030201",
    "110105001002GB00017F00030202",
    "110105001002GB00017F00030301",
    "110105001002GB00017F00030302",
];

/// The address of the flats, as the police and the housing bureau record it.
pub(crate) const ADDRESS: &str = "北京市朝阳区建国路88号院3号楼2单元201室";

/// An employer and a bank (unified social credit codes).
const EMPLOYER: &str = "91110000802100433B";
const BANK: &str = "91350100M000100Y43";

/// Publish metadata of version `version` of record `record_id`.
pub(crate) fn meta(record_id: &str, version: u64) -> PublishMeta {
    PublishMeta {
        record_id: record_id.into(),
        version,
        source_event_id: format!("src-{record_id}-v{version}"),
        occurred_at: Some(SystemTime::now().into()),
    }
}

fn date(year: i32, month: i32, day: i32) -> Option<Date> {
    Some(Date { year, month, day })
}

/// The event an adapter publishes for a validated upsert: the same envelope its publish
/// path builds (subjects, a UUIDv7 event id, the publish time), with the record's key.
pub(crate) fn envelope(meta: PublishMeta, payload: Payload) -> (RecordKey, RecordEvent) {
    let record_type = RecordType::of_payload(&payload);
    let subjects = subjects_of(&payload).iter().map(|s| s.to_proto()).collect();
    let event = RecordEvent {
        event_id: uuid::Uuid::now_v7().to_string(),
        agency: record_type.agency() as i32,
        record_type: record_type.as_str().to_owned(),
        record_id: meta.record_id,
        subjects,
        version: meta.version,
        source_event_id: meta.source_event_id,
        op: proto::Op::Upsert as i32,
        occurred_at: meta.occurred_at,
        published_at: Some(SystemTime::now().into()),
        payload: Some(payload),
    };
    (RecordKey::new(record_type, &event.record_id), event)
}

/// A valid payload of every record type, named for the benchmark ids, in the order of
/// [`RecordType::ALL`].
pub(crate) fn valid_payloads() -> Vec<(&'static str, Payload)> {
    let seller = person(PEOPLE[0]);
    let buyer = person(PEOPLE[1]);
    let co_owner = person(PEOPLE[2]);
    vec![
        ("enrollment", Payload::Enrollment(enrollment(&buyer, 1))),
        (
            "contribution_period",
            Payload::ContributionPeriod(contribution(&buyer, 2024, 6)),
        ),
        (
            "transfer_out_certificate",
            Payload::TransferOutCertificate(certificate(&buyer)),
        ),
        ("identity", Payload::Identity(identity(&seller))),
        (
            "household_registration",
            Payload::HouseholdRegistration(household(&seller, UNITS[0])),
        ),
        (
            "property_title",
            Payload::PropertyTitle(title(UNITS[0], &seller, &co_owner)),
        ),
        (
            "sale_contract",
            Payload::SaleContract(contract(UNITS[0], &[&seller, &co_owner], &buyer)),
        ),
        (
            "provident_fund_account",
            Payload::ProvidentFundAccount(account(&seller)),
        ),
        (
            "provident_fund_loan",
            Payload::ProvidentFundLoan(loan(&seller, UNITS[0])),
        ),
    ]
}

/// A property title with seven violations: a unit number one character short, an owner
/// ID with a wrong check character, a share of zero (and so shares that do not add up),
/// no floor area, a bank code with a wrong check character, a registration date in the
/// future.
pub(crate) fn invalid_title() -> Payload {
    let mut title = title(UNITS[0], &person(PEOPLE[0]), &person(PEOPLE[2]));
    title.unit_number.pop();
    let owner = &mut title.owners[0].person_id;
    let wrong = if owner.ends_with('0') { "1" } else { "0" };
    owner.replace_range(17.., wrong);
    title.owners[1].share_basis_points = 0;
    title.floor_area_dm2 = 0;
    title.encumbrances[0].holder_credit_code = "91350100M000100Y44".into();
    title.registered_on = date(2099, 1, 1);
    Payload::PropertyTitle(title)
}

/// The person's active enrollment in insurance type `insurance_type` in Chaoyang.
pub(crate) fn enrollment(person_id: &str, insurance_type: i32) -> proto::Enrollment {
    proto::Enrollment {
        person_id: person_id.into(),
        insurance_type,
        region_code: "110105".into(),
        employer_credit_code: EMPLOYER.into(),
        status: proto::EnrollmentStatus::Active as i32,
        start_date: date(2015, 7, 1),
        end_date: None,
    }
}

/// The person's pension contributions of one month in Chaoyang.
pub(crate) fn contribution(person_id: &str, year: i32, month: i32) -> proto::ContributionPeriod {
    proto::ContributionPeriod {
        person_id: person_id.into(),
        insurance_type: proto::InsuranceType::Pension as i32,
        region_code: "110105".into(),
        employer_credit_code: EMPLOYER.into(),
        period: Some(proto::YearMonth { year, month }),
        base_fen: 1_000_000,
        personal_fen: 80_000,
        employer_fen: 160_000,
    }
}

/// A pension transfer-out certificate from Beijing's Chaoyang to Shanghai's Xuhui.
pub(crate) fn certificate(person_id: &str) -> proto::TransferOutCertificate {
    proto::TransferOutCertificate {
        person_id: person_id.into(),
        insurance_type: proto::InsuranceType::Pension as i32,
        certificate_number: "ZY-110105-2025-000421".into(),
        from_region_code: "110105".into(),
        to_region_code: "310104".into(),
        issued_on: date(2025, 3, 1),
        contribution_months: 120,
        personal_account_balance_fen: 9_600_000,
    }
}

/// The identity record agreeing with the ID number (birth date, sex digit).
pub(crate) fn identity(person_id: &str) -> proto::Identity {
    let year = person_id[6..10].parse().expect("digits");
    let month = person_id[10..12].parse().expect("digits");
    let day = person_id[12..14].parse().expect("digits");
    let odd = (person_id.as_bytes()[16] - b'0') % 2 == 1;
    proto::Identity {
        person_id: person_id.into(),
        name: "欧阳娜娜".into(),
        sex: if odd {
            proto::Sex::Male
        } else {
            proto::Sex::Female
        } as i32,
        birth_date: date(year, month, day),
    }
}

/// The person's household registration at flat `unit`.
pub(crate) fn household(person_id: &str, unit: &str) -> proto::HouseholdRegistration {
    proto::HouseholdRegistration {
        person_id: person_id.into(),
        household_number: "110105-0042".into(),
        region_code: "110105".into(),
        address: ADDRESS.into(),
        status: proto::HouseholdStatus::Registered as i32,
        property_unit_number: unit.into(),
        registered_on: date(2008, 6, 1),
        destination_region_code: String::new(),
        destination_address: String::new(),
    }
}

/// The title of flat `unit`, 60 % `owner` and 40 % `co_owner`, with a bank's mortgage.
pub(crate) fn title(unit: &str, owner: &str, co_owner: &str) -> proto::PropertyTitle {
    proto::PropertyTitle {
        unit_number: unit.into(),
        certificate_number: "京(2008)朝阳区不动产权第0123456号".into(),
        address: ADDRESS.into(),
        owners: vec![
            proto::Owner {
                person_id: owner.into(),
                share_basis_points: 6_000,
            },
            proto::Owner {
                person_id: co_owner.into(),
                share_basis_points: 4_000,
            },
        ],
        floor_area_dm2: 8_932,
        encumbrances: vec![proto::Encumbrance {
            kind: proto::EncumbranceKind::Mortgage as i32,
            holder_credit_code: BANK.into(),
            amount_fen: 60_000_000,
            registered_on: date(2008, 6, 1),
        }],
        registered_on: date(2008, 5, 20),
    }
}

/// A filed contract selling flat `unit` from `sellers` to `buyer`.
pub(crate) fn contract(unit: &str, sellers: &[&str], buyer: &str) -> proto::SaleContract {
    proto::SaleContract {
        contract_number: "WQ-2025-000981".into(),
        unit_number: unit.into(),
        seller_ids: sellers.iter().map(|s| (*s).to_owned()).collect(),
        buyer_ids: vec![buyer.into()],
        price_fen: 520_000_000,
        status: proto::SaleContractStatus::Filed as i32,
        signed_on: date(2025, 9, 20),
    }
}

/// The person's active provident-fund account.
pub(crate) fn account(person_id: &str) -> proto::ProvidentFundAccount {
    proto::ProvidentFundAccount {
        person_id: person_id.into(),
        account_number: "GJJ-110105-0000123".into(),
        region_code: "110105".into(),
        employer_credit_code: EMPLOYER.into(),
        status: proto::AccountStatus::Active as i32,
        balance_fen: 12_300_000,
        monthly_deposit_fen: 240_000,
        opened_on: date(2010, 1, 4),
        last_deposit_month: None,
        consecutive_deposit_months: 0,
    }
}

/// The borrower's provident-fund loan on flat `unit`, being repaid.
pub(crate) fn loan(borrower: &str, unit: &str) -> proto::ProvidentFundLoan {
    proto::ProvidentFundLoan {
        borrower_id: borrower.into(),
        loan_contract_number: "GJJ-2008-7788".into(),
        unit_number: unit.into(),
        principal_fen: 60_000_000,
        outstanding_principal_fen: 21_500_000,
        status: proto::LoanStatus::Repaying as i32,
        issued_on: date(2008, 6, 1),
    }
}
