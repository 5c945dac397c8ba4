use super::*;
use crate::proto::{
    EnrollmentStatus, HouseholdMoveParams, InsuranceType, LoanStatus, PropertyTransferParams,
    SocialSecurityTransferParams,
};
use crate::resolver::checks::fixtures::*;

/// A sale of [`UNIT`] by `SELLER_A` to `BUYER_A` under contract `HT-C-1`.
pub(in crate::cases) fn sale() -> CaseParams {
    CaseParams {
        kind: Some(case_params::Kind::PropertyTransfer(
            PropertyTransferParams {
                unit_number: UNIT.into(),
                contract_number: "HT-C-1".into(),
                seller_ids: vec![SELLER_A.into()],
                buyer_ids: vec![BUYER_A.into()],
            },
        )),
    }
}

fn holds(condition: Condition) -> RecordProof {
    match condition {
        Condition::Holds(proof) => proof,
        Condition::Open => panic!("expected the step to be proved"),
    }
}

fn proof(key: &str, version: u64) -> RecordProof {
    RecordProof {
        record_key: key.into(),
        version,
        absence: String::new(),
    }
}

#[test]
fn every_kind_has_a_plan_whose_order_refers_to_its_own_steps() {
    for kind in [
        CaseKind::PropertyTransfer,
        CaseKind::SocialSecurityTransfer,
        CaseKind::ProvidentFundTransfer,
        CaseKind::HouseholdMove,
        CaseKind::ProvidentFundLoan,
    ] {
        let steps = steps_of(kind);
        assert!(!steps.is_empty(), "{kind:?}");
        for (i, s) in steps.iter().enumerate() {
            for before in s.after {
                let at = steps.iter().position(|o| o.kind == *before);
                assert!(
                    at.is_some_and(|at| at < i),
                    "{kind:?}: {:?} after {before:?}",
                    s.kind
                );
            }
        }
    }
    assert!(steps_of(CaseKind::Unspecified).is_empty());
}

#[test]
fn a_seller_registered_at_the_unit_keeps_the_step_open_until_the_record_moves_out() {
    let registered = household(
        "h-1",
        1,
        SELLER_A,
        UNIT_ADDRESS,
        UNIT,
        HouseholdStatus::Registered,
    );
    let moved = household(
        "h-1",
        2,
        SELLER_A,
        UNIT_ADDRESS,
        UNIT,
        HouseholdStatus::MovedOut,
    );
    let elsewhere = household(
        "h-2",
        1,
        SELLER_A,
        UNIT_ADDRESS,
        OTHER_UNIT,
        HouseholdStatus::Registered,
    );
    let step = StepKind::SellerHouseholdMovedOut;
    assert_eq!(evaluate(step, &sale(), &[registered]), Condition::Open);
    assert_eq!(
        holds(evaluate(step, &sale(), &[moved])),
        proof("public-security/household_registration/h-1", 2)
    );
    // Registered at another unit, with someone else at this one: the seller's own record
    // proves it.
    let other = household(
        "h-3",
        1,
        OTHER,
        UNIT_ADDRESS,
        UNIT,
        HouseholdStatus::Registered,
    );
    assert_eq!(
        holds(evaluate(step, &sale(), &[elsewhere, other.clone()])),
        proof("public-security/household_registration/h-2", 1)
    );
    // No record of the seller at all is unknown, not moved out: public security confirms.
    assert_eq!(evaluate(step, &sale(), &[]), Condition::Open);
    assert_eq!(evaluate(step, &sale(), &[other]), Condition::Open);
}

/// The plan decides "is a seller registered at the unit" by the property check's own
/// predicate: a registration with an address but no unit number is at the unit when its
/// address normalises to the title's; the check blocks exactly when the plan keeps the
/// step open, on the same records.
#[test]
fn the_plan_and_the_property_check_agree_on_an_address_only_registration() {
    use crate::resolver::checks::{BlockerCode, Contributions, check_property_transfer};
    let step = StepKind::SellerHouseholdMovedOut;
    let owned = title(1, &[(SELLER_A, 10_000)], false);
    let spelled_otherwise = "北京市朝阳区建国路８８號3号楼2单元501";
    let at_address = household(
        "h-1",
        1,
        SELLER_A,
        spelled_otherwise,
        "",
        HouseholdStatus::Registered,
    );
    let moved = household(
        "h-1",
        2,
        SELLER_A,
        spelled_otherwise,
        "",
        HouseholdStatus::MovedOut,
    );
    let elsewhere = in_region(
        household(
            "h-1",
            3,
            SELLER_A,
            "北京市海淀区中关村大街1号",
            "",
            HouseholdStatus::Registered,
        ),
        "110108",
    );
    let check_codes = |records: &[RecordEvent]| {
        check_property_transfer(
            &unit(),
            &[id(SELLER_A)],
            &[id(BUYER_A)],
            records,
            &Contributions::default(),
            &[],
            date(2026, 12, 1),
        )
        .unwrap()
        .codes()
    };
    let blocked = |records: &[RecordEvent]| {
        check_codes(records).contains(&BlockerCode::SellerHouseholdAtUnit)
    };
    for (registration, at_unit) in [(at_address, true), (moved, false), (elsewhere, false)] {
        let records = [owned.clone(), registration];
        assert_eq!(blocked(&records), at_unit, "{records:?}");
        let open = evaluate(step, &sale(), &records) == Condition::Open;
        assert_eq!(open, at_unit, "{records:?}");
    }
    // In the unit's district at an address that is not the title's: only the police can
    // say, so the check asks them and the step stays open.
    let unsure = household(
        "h-1",
        4,
        SELLER_A,
        "北京市朝阳区建国路99号",
        "",
        HouseholdStatus::Registered,
    );
    let records = [owned.clone(), unsure];
    assert!(check_codes(&records).contains(&BlockerCode::SellerHouseholdUnverified));
    assert!(!check_codes(&records).contains(&BlockerCode::SellerHouseholdAtUnit));
    assert_eq!(evaluate(step, &sale(), &records), Condition::Open);
    // Without the title there is no address to compare: an address-only registration
    // proves nothing either way, and the step stays open.
    let alone = household(
        "h-1",
        3,
        SELLER_A,
        "北京市海淀区中关村大街1号",
        "",
        HouseholdStatus::Registered,
    );
    assert_eq!(evaluate(step, &sale(), &[alone]), Condition::Open);
}

#[test]
fn a_lowercase_unit_number_in_the_case_reads_and_proves_the_same_records() {
    let mut params = sale();
    if let Some(case_params::Kind::PropertyTransfer(p)) = &mut params.kind {
        p.unit_number = UNIT.to_ascii_lowercase();
    }
    assert_eq!(reads(&params)[0].0.as_str(), format!("u:{UNIT}"));
    let registered = household(
        "h-1",
        1,
        SELLER_A,
        UNIT_ADDRESS,
        UNIT,
        HouseholdStatus::Registered,
    );
    assert_eq!(
        evaluate(StepKind::SellerHouseholdMovedOut, &params, &[registered]),
        Condition::Open
    );
}

#[test]
fn any_outstanding_loan_on_the_unit_keeps_the_loan_step_open() {
    let step = StepKind::LoanSettled;
    let repaying = loan_event("l-1", 1, SELLER_A, LoanStatus::Repaying, 10);
    let settled = loan_event("l-2", 3, SELLER_A, LoanStatus::Settled, 0);
    assert_eq!(
        evaluate(step, &sale(), &[settled.clone(), repaying]),
        Condition::Open
    );
    assert_eq!(
        holds(evaluate(step, &sale(), &[settled])),
        proof("provident-fund/loan/l-2", 3)
    );
    // No loan record is unknown, not settled: the fund centre confirms there is none.
    assert_eq!(evaluate(step, &sale(), &[]), Condition::Open);
}

#[test]
fn the_contract_must_be_filed_and_the_title_must_name_exactly_the_buyers() {
    let signed = contract(
        "C-1",
        1,
        UNIT,
        &[SELLER_A],
        &[BUYER_A],
        SaleContractStatus::Signed,
    );
    let filed = contract(
        "C-1",
        2,
        UNIT,
        &[SELLER_A],
        &[BUYER_A],
        SaleContractStatus::Filed,
    );
    let other = contract(
        "C-2",
        2,
        UNIT,
        &[SELLER_A],
        &[BUYER_A],
        SaleContractStatus::Filed,
    );
    let step = StepKind::SaleContractFiled;
    assert_eq!(evaluate(step, &sale(), &[signed, other]), Condition::Open);
    assert_eq!(
        holds(evaluate(step, &sale(), &[filed])),
        proof("housing/sale_contract/C-1", 2)
    );

    let step = StepKind::TitleRegistered;
    let sellers = title(1, &[(SELLER_A, 10_000)], false);
    let shared = title(2, &[(BUYER_A, 5_000), (BUYER_B, 5_000)], false);
    let buyers = title(3, &[(BUYER_A, 10_000)], false);
    assert_eq!(evaluate(step, &sale(), &[sellers]), Condition::Open);
    assert_eq!(evaluate(step, &sale(), &[shared]), Condition::Open);
    assert_eq!(holds(evaluate(step, &sale(), &[buyers])).version, 3);
}

#[test]
fn a_social_security_transfer_is_proved_by_the_certificate_then_the_enrollment_at_target() {
    let params = CaseParams {
        kind: Some(case_params::Kind::SocialSecurityTransfer(
            SocialSecurityTransferParams {
                person_id: SELLER_A.into(),
                insurance_type: InsuranceType::Pension as i32,
                from_region_code: BEIJING.into(),
                to_region_code: SHANGHAI.into(),
            },
        )),
    };
    let pension = InsuranceType::Pension;
    let wrong_way = certificate("z-1", 1, SELLER_A, pension, SHANGHAI, BEIJING);
    let issued = certificate("z-2", 1, SELLER_A, pension, BEIJING, SHANGHAI);
    let step = StepKind::TransferOutCertificateIssued;
    assert_eq!(evaluate(step, &params, &[wrong_way]), Condition::Open);
    assert_eq!(
        holds(evaluate(step, &params, &[issued])).record_key,
        "social-security/transfer_out_certificate/z-2"
    );

    let step = StepKind::TransferAccepted;
    let at_source = enrollment(
        "e-1",
        1,
        SELLER_A,
        pension,
        BEIJING,
        EnrollmentStatus::Active,
        (2015, 1),
        None,
    );
    let at_target = enrollment(
        "e-2",
        4,
        SELLER_A,
        pension,
        SHANGHAI,
        EnrollmentStatus::Active,
        (2026, 1),
        None,
    );
    assert_eq!(
        evaluate(step, &params, std::slice::from_ref(&at_source)),
        Condition::Open
    );
    assert_eq!(
        holds(evaluate(step, &params, &[at_source, at_target])).version,
        4
    );

    // Carrying contributions over is the target region's to confirm: records never do.
    assert_eq!(
        evaluate(StepKind::ContributionsCarriedOver, &params, &[]),
        Condition::Open
    );
}

#[test]
fn a_household_move_is_proved_by_moving_out_to_the_target_then_registering_there() {
    let params = CaseParams {
        kind: Some(case_params::Kind::HouseholdMove(HouseholdMoveParams {
            person_id: SELLER_A.into(),
            to_region_code: SHANGHAI.into(),
        })),
    };
    // The fixture's moved-out records name Shanghai as the destination.
    let moved = household(
        "h-1",
        2,
        SELLER_A,
        UNIT_ADDRESS,
        "",
        HouseholdStatus::MovedOut,
    );
    let step = StepKind::HouseholdMovedOut;
    assert_eq!(holds(evaluate(step, &params, &[moved])).version, 2);
    let still = household(
        "h-1",
        1,
        SELLER_A,
        UNIT_ADDRESS,
        "",
        HouseholdStatus::Registered,
    );
    assert_eq!(evaluate(step, &params, &[still]), Condition::Open);
}

#[test]
fn reads_name_the_subject_and_types_each_kind_evaluates() {
    let reads = reads(&sale());
    assert_eq!(reads.len(), 2);
    assert_eq!(reads[0].0.as_str(), format!("u:{UNIT}"));
    assert!(reads[0].1.contains(&RecordType::ProvidentFundLoan));
    // A seller's registration that carries only an address is filed under the seller.
    assert_eq!(reads[1].0.as_str(), format!("p:{SELLER_A}"));
    assert_eq!(reads[1].1, vec![RecordType::HouseholdRegistration]);
    assert_eq!(kind_of(&sale()), Some(CaseKind::PropertyTransfer));
    assert_eq!(kind_of(&CaseParams::default()), None);
}

#[test]
fn a_loan_application_is_approved_by_a_repaying_loan_of_the_applicant_on_the_unit() {
    let params = CaseParams {
        kind: Some(case_params::Kind::ProvidentFundLoan(
            crate::proto::ProvidentFundLoanParams {
                person_id: BUYER_A.into(),
                unit_number: UNIT.into(),
                amount_fen: 50_000_000,
            },
        )),
    };
    assert_eq!(kind_of(&params), Some(CaseKind::ProvidentFundLoan));
    let plan = steps_of(CaseKind::ProvidentFundLoan);
    assert_eq!(plan.len(), 1);
    assert_eq!(
        (plan[0].kind, plan[0].agency),
        (StepKind::FundLoanApproved, Agency::ProvidentFund)
    );
    assert_eq!(
        reads(&params),
        vec![(
            SubjectKey::from_stored(&format!("p:{BUYER_A}")),
            vec![RecordType::ProvidentFundLoan]
        )]
    );

    let step = StepKind::FundLoanApproved;
    // Nothing recorded: the fund's task decides.
    assert_eq!(evaluate(step, &params, &[]), Condition::Open);
    // A settled loan is an earlier one, someone else's loan is not the applicant's.
    let settled = loan_event("L-OLD", 1, BUYER_A, LoanStatus::Settled, 0);
    let sellers = loan_event("L-SELLER", 1, SELLER_A, LoanStatus::Repaying, 100);
    assert_eq!(
        evaluate(step, &params, &[settled, sellers]),
        Condition::Open
    );
    // A repaying loan to the applicant on the unit proves the approval.
    let granted = loan_event("L-NEW", 2, BUYER_A, LoanStatus::Repaying, 50_000_000);
    assert_eq!(
        holds(evaluate(step, &params, &[granted])),
        proof("provident-fund/loan/L-NEW", 2)
    );
}
