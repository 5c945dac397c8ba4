//! Profiles assembled under grants of every shape, field by field.

use super::*;
use crate::identity::Requester;
use crate::proto::Agency;
use crate::records::RecordKey;
use crate::resolver::policy::{Decision, Policy, Purpose};
const PERSON: &str = "11010519491231002X";
const OTHER: &str = "110105198003120014";

fn access(grant: &str) -> Access {
    let text =
        format!("[[grant]]\nagency = \"housing\"\nservice = \"w\"\npurpose = \"p\"\n{grant}\n");
    let policy = Policy::parse(&text).unwrap();
    match policy.decide(
        &Requester::new(Agency::Housing, "w"),
        &Purpose::parse("p").unwrap(),
    ) {
        Decision::Allowed(access) => access,
        Decision::Denied(d) => panic!("{d}"),
    }
}

fn stored(record_type: RecordType, id: &str, version: u64, payload: Payload) -> StoredRecord {
    let event = RecordEvent {
        record_id: id.into(),
        version,
        occurred_at: Some(prost_types::Timestamp {
            seconds: 1_700_000_000 + version as i64,
            nanos: 0,
        }),
        payload: Some(payload),
        ..Default::default()
    };
    StoredRecord {
        key: RecordKey::new(record_type, id),
        version,
        event: crate::records::stored::compact(&prost::Message::encode_to_vec(&event)).unwrap(),
    }
}

fn person_records() -> Vec<StoredRecord> {
    vec![
        stored(
            RecordType::Identity,
            "I-1",
            3,
            Payload::Identity(proto::Identity {
                person_id: PERSON.into(),
                name: "王小明".into(),
                sex: proto::Sex::Female as i32,
                birth_date: Some(proto::Date {
                    year: 1949,
                    month: 12,
                    day: 31,
                }),
            }),
        ),
        stored(
            RecordType::HouseholdRegistration,
            "H-1",
            2,
            Payload::HouseholdRegistration(proto::HouseholdRegistration {
                person_id: PERSON.into(),
                household_number: "H-0001".into(),
                region_code: "110105".into(),
                address: "北京市朝阳区建国路88号3栋201".into(),
                status: proto::HouseholdStatus::MovedOut as i32,
                destination_region_code: "310104".into(),
                destination_address: "上海市徐汇区漕溪北路1号".into(),
                ..Default::default()
            }),
        ),
        stored(
            RecordType::ProvidentFundAccount,
            "A-1",
            1,
            Payload::ProvidentFundAccount(proto::ProvidentFundAccount {
                person_id: PERSON.into(),
                account_number: "GJJ-1".into(),
                balance_fen: 12_300,
                monthly_deposit_fen: 2_400,
                ..Default::default()
            }),
        ),
        stored(
            RecordType::PropertyTitle,
            "T-1",
            1,
            Payload::PropertyTitle(proto::PropertyTitle {
                unit_number: "110105001002GB00017F00030201".into(),
                address: "北京市朝阳区建国路88号3栋201".into(),
                owners: vec![
                    proto::Owner {
                        person_id: PERSON.into(),
                        share_basis_points: 5_000,
                    },
                    proto::Owner {
                        person_id: OTHER.into(),
                        share_basis_points: 5_000,
                    },
                ],
                ..Default::default()
            }),
        ),
    ]
}

fn assemble_with(grant: &str) -> proto::GetPersonProfileResponse {
    let data = SubjectData {
        records: person_records(),
        contributions: None,
    };
    assemble(&ResidentId::parse(PERSON).unwrap(), &access(grant), data).unwrap()
}

#[test]
fn masked_by_default_field_by_field() {
    let out = assemble_with(r#"sections = ["identity", "household", "property"]"#);
    let identity = out.identity.unwrap().identity.unwrap();
    assert_eq!(identity.person_id, "110105********002X");
    assert_eq!(identity.name, "王**");
    assert_eq!(identity.sex, proto::Sex::Female as i32);
    let household = &out.household.unwrap().registrations[0];
    assert_eq!(household.person_id, "110105********002X");
    assert_eq!(household.address, "北京市朝阳区");
    assert_eq!(household.destination_address, "上海市徐汇区");
    assert_eq!(household.household_number, "H-0001");
    let title = &out.property.unwrap().titles[0];
    assert_eq!(title.address, "北京市朝阳区");
    let owners: Vec<&str> = title.owners.iter().map(|o| o.person_id.as_str()).collect();
    assert_eq!(owners, ["110105********002X", "110105********0014"]);
    assert_eq!(out.withheld_sections, ["social-security", "provident-fund"]);
}

#[test]
fn unmasked_kinds_show_in_clear_and_only_those() {
    let out = assemble_with(
        "sections = [\"identity\", \"household\"]\nunmasked = [\"name\", \"address\"]",
    );
    let identity = out.identity.unwrap().identity.unwrap();
    assert_eq!(identity.name, "王小明");
    assert_eq!(identity.person_id, "110105********002X");
    let household = &out.household.unwrap().registrations[0];
    assert_eq!(household.address, "北京市朝阳区建国路88号3栋201");
}

#[test]
fn fields_outside_the_grant_are_cleared_and_named() {
    let out = assemble_with(
        "sections = [\"identity\", \"household\", \"provident-fund\"]\n\
         fields = { identity = [\"name\"], household = [\"region\", \"status\"], provident-fund = [\"balance\"] }",
    );
    let identity = out.identity.unwrap();
    assert_eq!(
        identity.info.unwrap().withheld_fields,
        ["person-id", "sex", "birth-date"]
    );
    let shown = identity.identity.unwrap();
    assert_eq!(
        (shown.person_id.as_str(), shown.sex, shown.birth_date),
        ("", 0, None)
    );
    let household = &out.household.unwrap().registrations[0];
    assert_eq!(household.region_code, "110105");
    assert_eq!(household.status, proto::HouseholdStatus::MovedOut as i32);
    assert!(household.address.is_empty() && household.household_number.is_empty());
    assert!(household.destination_address.is_empty());
    let fund = out.provident_fund.unwrap();
    assert_eq!(fund.accounts[0].balance_fen, 12_300);
    assert!(fund.accounts[0].account_number.is_empty());
    assert_eq!(out.withheld_sections, ["social-security", "property"]);
}

#[test]
fn each_section_says_where_it_comes_from_and_when() {
    let out = assemble_with(r#"sections = ["identity", "social-security"]"#);
    let info = out.identity.unwrap().info.unwrap();
    assert_eq!(info.status(), proto::SectionStatus::Present);
    assert_eq!(info.source_agency, Agency::PublicSecurity as i32);
    assert_eq!(info.records[0].record_key, "public-security/identity/I-1");
    assert_eq!(info.records[0].version, 3);
    assert_eq!(info.as_of.unwrap().seconds, 1_700_000_003);
    let social = out.social_security.unwrap().info.unwrap();
    assert_eq!(social.status(), proto::SectionStatus::NoData);
    let fund = out.provident_fund.unwrap().info.unwrap();
    assert_eq!(fund.status(), proto::SectionStatus::Withheld);
    assert!(fund.records.is_empty());
}

#[test]
fn the_read_asks_only_for_what_the_grant_shows() {
    let read = profile_read(
        &ResidentId::parse(PERSON).unwrap(),
        &access(
            "sections = [\"social-security\", \"provident-fund\"]\n\
             fields = { social-security = [\"contributions\"], provident-fund = [\"loans\"] }",
        ),
    );
    assert_eq!(read.types, [RecordType::ProvidentFundLoan]);
    assert!(read.contributions);
}
