//! Unit tests of field validation.
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
    validate_payload(&mut payload.clone(), "record", horizon, &mut v);
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

/// A record with one date of a past event set to the given day.
type Build = fn(CivilDate) -> Payload;

/// Every date of a past event, in each record type: the field it is validated as, and
/// a record of that type with the date set to a given day.
fn past_event_dates() -> [(&'static str, Build); 7] {
    [
        ("record.start_date", enrollment_started_on),
        ("record.issued_on", certificate_issued_on),
        ("record.registered_on", household_registered_on),
        (
            "record.encumbrances[0].registered_on",
            seizure_registered_on,
        ),
        ("record.signed_on", contract_signed_on),
        ("record.opened_on", account_opened_on),
        ("record.issued_on", loan_issued_on),
    ]
}

/// An enrollment that started on `d`.
fn enrollment_started_on(d: CivilDate) -> Payload {
    Payload::Enrollment(proto::Enrollment {
        person_id: nth_person(1),
        insurance_type: proto::InsuranceType::Pension as i32,
        region_code: "110105".into(),
        employer_credit_code: String::new(),
        status: proto::EnrollmentStatus::Active as i32,
        start_date: date(d),
        end_date: None,
    })
}

/// A transfer-out certificate issued on `d`.
fn certificate_issued_on(d: CivilDate) -> Payload {
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
}

/// A household registration made on `d`.
fn household_registered_on(d: CivilDate) -> Payload {
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
}

/// A title with a seizure registered on `d`.
fn seizure_registered_on(d: CivilDate) -> Payload {
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
}

/// A sale contract signed on `d`.
fn contract_signed_on(d: CivilDate) -> Payload {
    Payload::SaleContract(proto::SaleContract {
        signed_on: date(d),
        ..contract(vec![nth_person(1)], vec![nth_person(2)])
    })
}

/// A provident-fund account opened on `d`.
fn account_opened_on(d: CivilDate) -> Payload {
    Payload::ProvidentFundAccount(proto::ProvidentFundAccount {
        person_id: nth_person(1),
        account_number: "A-1".into(),
        region_code: "110105".into(),
        employer_credit_code: String::new(),
        status: proto::AccountStatus::Active as i32,
        balance_fen: 0,
        monthly_deposit_fen: 0,
        opened_on: date(d),
        last_deposit_month: None,
        consecutive_deposit_months: 0,
    })
}

/// A provident-fund loan issued on `d`.
fn loan_issued_on(d: CivilDate) -> Payload {
    Payload::ProvidentFundLoan(proto::ProvidentFundLoan {
        borrower_id: nth_person(1),
        loan_contract_number: "L-1".into(),
        unit_number: UNIT.into(),
        principal_fen: 1,
        outstanding_principal_fen: 1,
        status: proto::LoanStatus::Repaying as i32,
        issued_on: date(d),
    })
}

/// The latest allowed date of a past event is accepted and the day after refused.
#[test]
fn dates_of_past_events_must_not_lie_beyond_the_horizon() {
    let horizon = Horizon::at(now(), Duration::ZERO);
    let today = horizon.latest_day();
    let tomorrow = day(2026, 11, 28);
    for (field, build) in past_event_dates() {
        assert_eq!(fields(&build(today), &horizon), [] as [&str; 0], "{field}");
        let found = check(&build(tomorrow), &horizon);
        assert_eq!(
            found,
            [(
                field.to_owned(),
                "must not be in the future (after 2026-11-27 in China)".to_owned()
            )],
            "{field}"
        );
    }
}

/// An event an adapter accepted is never refused for its dates.
#[test]
fn dates_of_past_events_are_not_bounded_without_a_horizon() {
    for (field, build) in past_event_dates() {
        let far = build(CivilDate::MAX);
        assert_eq!(
            fields(&far, &Horizon::UNBOUNDED),
            [] as [&str; 0],
            "{field}"
        );
    }
}

/// The skew allowance moves the horizon to the 28th.
#[test]
fn the_skew_allowance_moves_the_horizon_of_past_events() {
    let tomorrow = day(2026, 11, 28);
    let skewed = Horizon::at(now(), Duration::from_secs(3600));
    for (field, build) in past_event_dates() {
        assert_eq!(
            fields(&build(tomorrow), &skewed),
            [] as [&str; 0],
            "{field}"
        );
    }
}

/// A birth date, and the birth date in a resident ID, of tomorrow.
#[test]
fn birth_dates_must_not_lie_beyond_the_horizon() {
    let horizon = Horizon::at(now(), Duration::ZERO);
    let tomorrow = day(2026, 11, 28);
    let a = nth_person(1);
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

#[test]
fn valid_identifiers_are_written_back_in_their_one_spelling() {
    let seller = (0..1000)
        .map(|n| person(&format!("11010519800312{n:03}")))
        .find(|id| id.ends_with('X'))
        .unwrap();
    let buyer = person("31010419900521002");
    let mut payload = Payload::SaleContract(contract(
        vec![seller.to_ascii_lowercase()],
        vec![buyer.clone()],
    ));
    if let Payload::SaleContract(c) = &mut payload {
        c.unit_number = UNIT.to_ascii_lowercase();
    }
    let mut v = Violations::default();
    validate_payload(&mut payload, "record", &Horizon::UNBOUNDED, &mut v);
    assert!(v.is_empty(), "{v:?}");
    let Payload::SaleContract(c) = payload else {
        unreachable!()
    };
    assert_eq!((c.unit_number.as_str(), c.seller_ids), (UNIT, vec![seller]));
    assert_eq!(c.buyer_ids, vec![buyer]);

    // An invalid identifier is left as sent: the violation quotes what was wrong.
    let mut payload = Payload::SaleContract(contract(vec!["x".into()], vec!["y".into()]));
    validate_payload(&mut payload, "record", &Horizon::UNBOUNDED, &mut v);
    let Payload::SaleContract(c) = payload else {
        unreachable!()
    };
    assert_eq!(
        (c.seller_ids, c.buyer_ids),
        (vec!["x".into()], vec!["y".into()])
    );
}

/// An account's run of deposits: both fields or neither, the last month not after the
/// current one, 1 to 1200 months, not starting before the account was opened.
#[test]
fn an_accounts_run_of_deposits_is_checked_field_by_field() {
    let horizon = Horizon::at(now(), Duration::ZERO);
    let run = |last: Option<(i32, i32)>, months: u32| {
        let Payload::ProvidentFundAccount(mut a) = account_opened_on(day(2015, 7, 1)) else {
            unreachable!()
        };
        a.last_deposit_month = last.map(|(year, month)| proto::YearMonth { year, month });
        a.consecutive_deposit_months = months;
        Payload::ProvidentFundAccount(a)
    };
    // Neither, or a run that fits: accepted. The current month (November 2026) may be paid.
    assert_eq!(fields(&run(None, 0), &horizon), [] as [&str; 0]);
    assert_eq!(
        fields(&run(Some((2026, 11)), 36), &horizon),
        [] as [&str; 0]
    );
    // The run may start in the month the account was opened, not before.
    assert_eq!(fields(&run(Some((2015, 7)), 1), &horizon), [] as [&str; 0]);
    assert_eq!(
        fields(&run(Some((2015, 8)), 3), &horizon),
        ["record.consecutive_deposit_months"]
    );
    // Months without a last month, or a last month without months.
    assert_eq!(
        fields(&run(None, 6), &horizon),
        ["record.consecutive_deposit_months"]
    );
    assert_eq!(
        fields(&run(Some((2026, 10)), 0), &horizon),
        ["record.consecutive_deposit_months"]
    );
    assert_eq!(
        fields(&run(Some((2026, 10)), 1201), &horizon),
        ["record.consecutive_deposit_months"]
    );
    // Not a month, or a month still ahead.
    assert_eq!(
        fields(&run(Some((2026, 13)), 1), &horizon),
        ["record.last_deposit_month"]
    );
    assert_eq!(
        check(&run(Some((2026, 12)), 1), &horizon),
        [(
            "record.last_deposit_month".to_owned(),
            "must not be after the current month (2026-11 in China)".to_owned()
        )]
    );
}
