//! Cross-agency answers against the real broker and Redis, scenarios from the field: the
//! flat whose seller is still registered at it, the loan that must be settled first, a
//! social-security transfer with a gap, and what each requester sees of a person.

use govlink::proto::{
    self, Agency, CheckPropertyTransferRequest, CheckSocialSecurityTransferRequest,
    GetPersonProfileRequest, Position, SectionStatus,
};
use tonic::Code;

use crate::helpers::*;

pub(crate) const WINDOW: &str = "housing/transfer-window";
const SOCIAL_WINDOW: &str = "social-security/transfer-window";
pub(crate) const PORTAL: &str = "public-security/citizen-portal";

/// Publishes the records of a flat sale from `alice` (owner, registered at the flat,
/// with a provident-fund loan on it) to `bea`: title, filed contract, household, loan.
/// Returns the positions of the acks.
async fn flat_for_sale(
    app: &TestApp,
    household_status: proto::HouseholdStatus,
    loan_status: proto::LoanStatus,
) -> Vec<Position> {
    let (seller, buyer) = (alice(), bea());
    let mut acks = publish_title_and_filed_contract(app, &seller, &buyer).await;
    acks.push(publish_household(app, "H-1", 1, &seller, household_status).await);
    let outstanding = if loan_status == proto::LoanStatus::Settled {
        0
    } else {
        30_000_000
    };
    acks.push(publish_loan(app, &seller, 1, loan_status, outstanding).await);
    acks.into_iter().map(|a| a.position.unwrap()).collect()
}

async fn publish_loan(
    app: &TestApp,
    borrower: &str,
    version: u64,
    status: proto::LoanStatus,
    outstanding: i64,
) -> proto::PublishAck {
    app.fund()
        .publish_loan(proto::PublishLoanRequest {
            meta: meta("L-1", version),
            record: Some(loan(borrower, status, outstanding)),
        })
        .await
        .unwrap()
        .into_inner()
}

pub(crate) async fn check_flat(
    app: &TestApp,
    after: &[Position],
) -> Result<proto::CheckPropertyTransferResponse, tonic::Status> {
    app.resolver_as(WINDOW, None)
        .check_property_transfer(CheckPropertyTransferRequest {
            unit_number: UNIT.into(),
            seller_ids: vec![alice()],
            buyer_ids: vec![bea()],
            purpose: "property-transfer".into(),
            case_id: "CASE-1".into(),
            min_positions: after.to_vec(),
        })
        .await
        .map(tonic::Response::into_inner)
}

fn codes(blockers: &[proto::Blocker]) -> Vec<&str> {
    blockers.iter().map(|b| b.code.as_str()).collect()
}

#[tokio::test]
async fn the_seller_still_registered_at_the_flat_blocks_the_sale_until_the_household_moves_out() {
    let app = spawn_app().await;
    let after = flat_for_sale(
        &app,
        proto::HouseholdStatus::Registered,
        proto::LoanStatus::Settled,
    )
    .await;

    let answer = check_flat(&app, &after).await.unwrap();
    assert!(!answer.eligible);
    assert_eq!(codes(&answer.blockers), ["SELLER_HOUSEHOLD_AT_UNIT"]);
    let blocker = &answer.blockers[0];
    assert_eq!(blocker.agency, Agency::PublicSecurity as i32);
    let proof = blocker.record.as_ref().unwrap();
    assert_eq!(
        proof.record_key,
        "public-security/household_registration/H-1"
    );
    assert_eq!(proof.version, 1);
    let party = blocker.party.unwrap();
    assert_eq!(
        (party.role, party.index),
        (proto::PartyRole::Seller as i32, 0)
    );
    assert!(blocker.action_zh.contains("迁出"), "{}", blocker.action_zh);
    assert!(!blocker.action_en.is_empty());

    // The police record the move; the check right after it sees it (read-your-writes).
    let moved = publish_household(&app, "H-1", 2, &alice(), proto::HouseholdStatus::MovedOut).await;
    let answer = check_flat(&app, &[moved.position.unwrap()]).await.unwrap();
    assert!(answer.eligible, "{:?}", answer.blockers);
    assert!(answer.blockers.is_empty());
    assert!(answer.checked_on.is_some());
    app.stop().await;
}

#[tokio::test]
async fn the_provident_fund_loan_on_the_flat_must_be_settled_first() {
    let app = spawn_app().await;
    let after = flat_for_sale(
        &app,
        proto::HouseholdStatus::MovedOut,
        proto::LoanStatus::Repaying,
    )
    .await;
    let answer = check_flat(&app, &after).await.unwrap();
    assert_eq!(codes(&answer.blockers), ["PROVIDENT_FUND_LOAN_UNSETTLED"]);
    let blocker = &answer.blockers[0];
    assert_eq!(blocker.agency, Agency::ProvidentFund as i32);
    assert_eq!(
        blocker.record.as_ref().unwrap().record_key,
        "provident-fund/loan/L-1"
    );

    let settled = publish_loan(&app, &alice(), 2, proto::LoanStatus::Settled, 0).await;
    let answer = check_flat(&app, &[settled.position.unwrap()])
        .await
        .unwrap();
    assert!(answer.eligible, "{:?}", answer.blockers);
    app.stop().await;
}

#[tokio::test]
async fn a_social_security_transfer_with_a_gap_in_contributions_names_the_unpaid_months() {
    let app = spawn_app().await;
    let person = chen();
    let mut after = Vec::new();
    // Enrolled for the pension in Beijing (suspended, ready to move) and in Shanghai.
    let mut source = enrollment(&person);
    source.status = proto::EnrollmentStatus::Suspended as i32;
    source.start_date = date(2025, 1, 1);
    let mut target = enrollment(&person);
    target.region_code = "310104".into();
    target.start_date = date(2026, 11, 1);
    for (id, record) in [("E-BJ", source), ("E-SH", target)] {
        let ack = app
            .social()
            .publish_enrollment(proto::PublishEnrollmentRequest {
                meta: meta(id, 1),
                record: Some(record),
            })
            .await
            .unwrap()
            .into_inner();
        after.push(ack.position.unwrap());
    }
    // Paid every month of 2025 except June to August.
    for month in (1..=12).filter(|m| !(6..=8).contains(m)) {
        let mut paid = contribution(&person);
        paid.period = Some(proto::YearMonth { year: 2025, month });
        let ack = app
            .social()
            .publish_contribution_period(proto::PublishContributionPeriodRequest {
                meta: meta(&format!("P-2025-{month:02}"), 1),
                record: Some(paid),
            })
            .await
            .unwrap()
            .into_inner();
        after.push(ack.position.unwrap());
    }
    let answer = app
        .resolver_as(SOCIAL_WINDOW, None)
        .check_social_security_transfer(CheckSocialSecurityTransferRequest {
            person_id: person.clone(),
            from_region: "110105".into(),
            to_region: "310104".into(),
            purpose: "social-security-transfer".into(),
            case_id: String::new(),
            min_positions: after,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!answer.eligible);
    assert_eq!(answer.months_paid_in_source, 9);
    let unpaid = answer
        .blockers
        .iter()
        .find(|b| b.code == "UNPAID_CONTRIBUTION_MONTHS")
        .unwrap_or_else(|| panic!("no unpaid-months blocker in {:?}", answer.blockers));
    assert_eq!(unpaid.agency, Agency::SocialSecurity as i32);
    assert!(unpaid.action_en.contains("2025-06"), "{}", unpaid.action_en);
    assert!(unpaid.action_en.contains("2025-08"), "{}", unpaid.action_en);
    assert!(
        codes(&answer.blockers).contains(&"TRANSFER_OUT_CERTIFICATE_MISSING"),
        "{:?}",
        answer.blockers
    );
    app.stop().await;
}

/// Publishes a little of everything about `alice` and returns the positions.
pub(crate) async fn everything_about_alice(app: &TestApp) -> Vec<Position> {
    let mut after = flat_for_sale(
        app,
        proto::HouseholdStatus::Registered,
        proto::LoanStatus::Repaying,
    )
    .await;
    let person = alice();
    let mut named = identity(&person);
    named.name = "王小明".into();
    let acks = [
        app.police()
            .publish_identity(proto::PublishIdentityRequest {
                meta: meta("I-1", 1),
                record: Some(named),
            })
            .await,
        app.social()
            .publish_enrollment(proto::PublishEnrollmentRequest {
                meta: meta("E-1", 1),
                record: Some(enrollment(&person)),
            })
            .await,
        app.social()
            .publish_contribution_period(proto::PublishContributionPeriodRequest {
                meta: meta("P-1", 1),
                record: Some(contribution(&person)),
            })
            .await,
        app.fund()
            .publish_account(proto::PublishAccountRequest {
                meta: meta("A-1", 1),
                record: Some(account(&person)),
            })
            .await,
    ];
    for ack in acks {
        after.push(ack.unwrap().into_inner().position.unwrap());
    }
    after
}

pub(crate) async fn profile(
    client: &mut Resolver,
    person: &str,
    purpose: &str,
    after: &[Position],
) -> Result<proto::GetPersonProfileResponse, tonic::Status> {
    client
        .get_person_profile(GetPersonProfileRequest {
            person_id: person.into(),
            purpose: purpose.into(),
            case_id: String::new(),
            min_positions: after.to_vec(),
        })
        .await
        .map(tonic::Response::into_inner)
}

fn info(section: Option<&proto::SectionInfo>) -> (SectionStatus, Vec<String>) {
    let info = section.expect("every section carries its info");
    (info.status(), info.withheld_fields.clone())
}

#[tokio::test]
async fn the_transfer_window_sees_its_grant_masked_and_is_told_what_is_withheld() {
    let app = spawn_app().await;
    let after = everything_about_alice(&app).await;
    let person = alice();
    let answer = profile(
        &mut app.resolver_as(WINDOW, None),
        &person,
        "property-transfer",
        &after,
    )
    .await
    .unwrap();

    // Identity: only the ID and the name, both masked.
    let identity = answer.identity.unwrap();
    let (status, withheld) = info(identity.info.as_ref());
    assert_eq!(status, SectionStatus::Present);
    assert_eq!(withheld, ["sex", "birth-date"]);
    let shown = identity.identity.unwrap();
    assert_eq!(
        shown.person_id,
        format!("{}********{}", &person[..6], &person[14..])
    );
    assert_eq!(shown.name, "王**");
    assert_eq!((shown.sex, shown.birth_date), (0, None));
    let info_ = identity.info.unwrap();
    assert_eq!(info_.source_agency, Agency::PublicSecurity as i32);
    assert_eq!(info_.records[0].record_key, "public-security/identity/I-1");
    assert!(info_.as_of.is_some());

    // Household: every field, the address masked.
    let household = answer.household.unwrap();
    let registration = &household.registrations[0];
    assert_eq!(registration.region_code, "110105");
    assert_ne!(registration.address, "Room 201, Building 3");
    assert_eq!(registration.person_id, shown.person_id);

    // Provident fund: the loans only; the account is not even read.
    let fund = answer.provident_fund.unwrap();
    assert_eq!(fund.loans.len(), 1);
    assert!(fund.accounts.is_empty());
    assert_eq!(info(fund.info.as_ref()).1, ["account", "balance"]);

    // Property: the title, owners masked.
    let property = answer.property.unwrap();
    assert_eq!(property.titles[0].unit_number, UNIT);
    assert_eq!(property.titles[0].owners[0].person_id, shown.person_id);

    // Social security is withheld: absent, and named as withheld.
    let social = answer.social_security.unwrap();
    assert_eq!(info(social.info.as_ref()).0, SectionStatus::Withheld);
    assert!(social.enrollments.is_empty() && social.contributions.is_none());
    assert_eq!(answer.withheld_sections, ["social-security"]);
    app.stop().await;
}

#[tokio::test]
async fn a_citizen_sees_their_own_data_unmasked_and_nobody_else_s() {
    let app = spawn_app().await;
    let after = everything_about_alice(&app).await;
    let person = alice();
    let mut portal = app.resolver_as(PORTAL, Some(&person));
    let answer = profile(&mut portal, &person, "self-view", &after)
        .await
        .unwrap();
    assert!(answer.withheld_sections.is_empty());
    let identity = answer.identity.unwrap().identity.unwrap();
    assert_eq!(
        (identity.person_id.as_str(), identity.name.as_str()),
        (person.as_str(), "王小明")
    );
    let social = answer.social_security.unwrap();
    assert_eq!(info(social.info.as_ref()).0, SectionStatus::Present);
    let summary = social.contributions.unwrap();
    assert_eq!(summary.months_paid, 1);
    assert_eq!(summary.months_by_region[0].region_code, "110105");
    let fund = answer.provident_fund.unwrap();
    assert_eq!(fund.accounts[0].balance_fen, 12_300_000);

    // Bea has no records at all: her own view says so section by section.
    let bea = bea();
    let answer = profile(
        &mut app.resolver_as(PORTAL, Some(&bea)),
        &bea,
        "self-view",
        &after,
    )
    .await
    .unwrap();
    let identity = answer.identity.unwrap();
    assert_eq!(info(identity.info.as_ref()).0, SectionStatus::NoData);
    assert!(identity.identity.is_none());

    // The portal acting for Bea cannot read Alice.
    let denied = profile(
        &mut app.resolver_as(PORTAL, Some(&bea)),
        &person,
        "self-view",
        &after,
    )
    .await
    .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert!(
        denied.message().contains("self-only"),
        "{}",
        denied.message()
    );
    app.stop().await;
}

#[tokio::test]
async fn lookups_without_a_grant_an_identity_or_a_valid_request_are_refused_precisely() {
    let app = spawn_app().await;
    let person = alice();
    // A requester with no grant for the purpose: denied, naming what is missing.
    let denied = profile(
        &mut app.resolver_as("housing/archive", None),
        &person,
        "property-transfer",
        &[],
    )
    .await
    .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert!(
        denied
            .message()
            .contains("no grant for housing/archive with purpose property-transfer"),
        "{}",
        denied.message()
    );
    // A grant that lacks a section the check reads.
    let denied = app
        .resolver_as(SOCIAL_WINDOW, None)
        .check_property_transfer(CheckPropertyTransferRequest {
            unit_number: UNIT.into(),
            seller_ids: vec![alice()],
            buyer_ids: vec![bea()],
            purpose: "social-security-transfer".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert!(
        denied
            .message()
            .contains("does not include section property"),
        "{}",
        denied.message()
    );

    // No identity at all.
    let mut anonymous = govlink::proto::resolver_client::ResolverClient::new(app.channel.clone());
    let refused = anonymous
        .get_person_profile(GetPersonProfileRequest {
            person_id: person.clone(),
            purpose: "property-transfer".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);

    // Malformed fields, each named.
    let bad = profile(
        &mut app.resolver(),
        "110105198003120010",
        "Property Transfer",
        &[],
    )
    .await
    .unwrap_err();
    let fields: Vec<String> = violations(&bad).into_iter().map(|(f, _)| f).collect();
    assert_eq!(fields, ["person_id", "purpose"]);
    let bad = app
        .resolver()
        .check_property_transfer(CheckPropertyTransferRequest {
            unit_number: "short".into(),
            seller_ids: vec![alice(), "x".into()],
            buyer_ids: vec![alice()],
            purpose: "property-transfer".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    let fields: Vec<String> = violations(&bad).into_iter().map(|(f, _)| f).collect();
    assert_eq!(fields, ["unit_number", "seller_ids[1]"]);
    let bad = app
        .resolver()
        .check_property_transfer(CheckPropertyTransferRequest {
            unit_number: UNIT.into(),
            seller_ids: vec![alice()],
            buyer_ids: vec![alice()],
            purpose: "property-transfer".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    let fields: Vec<String> = violations(&bad).into_iter().map(|(f, _)| f).collect();
    assert_eq!(fields, ["seller_ids"]);
    app.stop().await;
}

#[tokio::test]
async fn a_resolver_refuses_to_start_without_a_policy_or_with_a_broken_one() {
    let mut settings = test_settings();
    settings.policy = None;
    let output = govlink_command(&settings, "resolver").output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no access policy configured"), "{stderr}");

    let broken = std::env::temp_dir().join(format!("{}.toml", unique("policy")));
    std::fs::write(
        &broken,
        "[[grant]]\nagency = \"housing\"\nservice = \"w\"\npurpose = \"p\"\nsections = [\"houshold\"]\n",
    )
    .unwrap();
    settings.policy = Some(broken.display().to_string());
    let output = govlink_command(&settings, "resolver").output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(": unknown section \"houshold\""),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("policy {}: line ", broken.display())),
        "{stderr}"
    );
    std::fs::remove_file(broken).unwrap();
}
