//! Bad input of every kind gets INVALID_ARGUMENT naming the field and the rule, and
//! nothing reaches the broker.

use govlink::grpc::MAX_MESSAGE_BYTES;
use govlink::proto::{self, Agency};
use prost::Message;

use crate::helpers::*;

/// Each case: a change to a valid record, and the field that must be named.
type Case<T> = (&'static str, fn(&mut T), &'static str);

fn check_digit_flipped(id: &str) -> String {
    let mut id = id.to_owned();
    let last = if id.ends_with('1') { "2" } else { "1" };
    id.replace_range(17.., last);
    id
}

#[tokio::test]
async fn every_kind_of_bad_record_is_refused_with_its_field() {
    let app = spawn_app().await;

    let identity_cases: Vec<Case<proto::Identity>> = vec![
        (
            "wrong check character",
            |r| r.person_id = check_digit_flipped(&r.person_id),
            "record.person_id",
        ),
        (
            "too short",
            |r| r.person_id.truncate(17),
            "record.person_id",
        ),
        (
            "letters",
            |r| r.person_id.replace_range(3..4, "A"),
            "record.person_id",
        ),
        (
            "unknown province",
            |r| r.person_id = person("99010519800312001"),
            "record.person_id",
        ),
        (
            "impossible birth date",
            |r| r.person_id = person("11010519800230001"),
            "record.person_id",
        ),
        (
            "birth date disagrees",
            |r| r.birth_date = date(1981, 3, 12),
            "record.birth_date",
        ),
        (
            "sex disagrees",
            |r| r.sex = proto::Sex::Female as i32,
            "record.sex",
        ),
        ("sex unspecified", |r| r.sex = 0, "record.sex"),
        ("sex unknown value", |r| r.sex = 99, "record.sex"),
        ("empty name", |r| r.name = "  ".into(), "record.name"),
        ("name too long", |r| r.name = "名".repeat(65), "record.name"),
        (
            "control character",
            |r| r.name = "Li\u{0}Ming".into(),
            "record.name",
        ),
        (
            "no birth date",
            |r| r.birth_date = None,
            "record.birth_date",
        ),
        (
            "February 30",
            |r| r.birth_date = date(1980, 2, 30),
            "record.birth_date",
        ),
    ];
    for (case, change, field) in identity_cases {
        let mut record = identity(&alice());
        change(&mut record);
        let status = app
            .police()
            .publish_identity(proto::PublishIdentityRequest {
                meta: meta("i-1", 1),
                record: Some(record),
            })
            .await
            .expect_err(case);
        let fields: Vec<String> = violations(&status).into_iter().map(|(f, _)| f).collect();
        assert!(fields.contains(&field.to_owned()), "{case}: {fields:?}");
    }

    let meta_cases: Vec<(&str, Option<proto::PublishMeta>, &str)> = vec![
        ("no meta", None, "meta"),
        ("version 0", meta("i-1", 0), "meta.version"),
        ("empty record id", meta("", 1), "meta.record_id"),
        ("slash in record id", meta("a/b", 1), "meta.record_id"),
        (
            "record id too long",
            meta(&"x".repeat(65), 1),
            "meta.record_id",
        ),
        (
            "no occurred_at",
            Some(proto::PublishMeta {
                occurred_at: None,
                ..meta("i-1", 1).unwrap()
            }),
            "meta.occurred_at",
        ),
        (
            "occurred in the future",
            Some(proto::PublishMeta {
                occurred_at: Some(prost_types::Timestamp {
                    seconds: 4_102_444_800,
                    nanos: 0,
                }),
                ..meta("i-1", 1).unwrap()
            }),
            "meta.occurred_at",
        ),
    ];
    for (case, meta, field) in meta_cases {
        let status = app
            .police()
            .publish_identity(proto::PublishIdentityRequest {
                meta,
                record: Some(identity(&alice())),
            })
            .await
            .expect_err(case);
        assert_eq!(violations(&status)[0].0, field, "{case}");
    }
    let status = app
        .police()
        .publish_identity(proto::PublishIdentityRequest {
            meta: meta("i-1", 1),
            record: None,
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&status)[0].0, "record");

    let title_cases: Vec<Case<proto::PropertyTitle>> = vec![
        (
            "unit too short",
            |r| r.unit_number.pop().map(drop).unwrap_or(()),
            "record.unit_number",
        ),
        (
            "unit bad fixture code",
            |r| r.unit_number.replace_range(19..20, "K"),
            "record.unit_number",
        ),
        ("no owners", |r| r.owners.clear(), "record.owners"),
        (
            "shares short of 10000",
            |r| r.owners[0].share_basis_points = 9_000,
            "record.owners",
        ),
        (
            "owner twice",
            |r| r.owners.push(r.owners[0].clone()),
            "record.owners[1].person_id",
        ),
        (
            "zero area",
            |r| r.floor_area_dm2 = 0,
            "record.floor_area_dm2",
        ),
        (
            "registered in 9999",
            |r| r.registered_on = date(9999, 12, 31),
            "record.registered_on",
        ),
        (
            "bad mortgagee",
            |r| {
                r.encumbrances.push(proto::Encumbrance {
                    kind: proto::EncumbranceKind::Mortgage as i32,
                    holder_credit_code: "91350100M000100Y44".into(),
                    amount_fen: 1,
                    registered_on: date(2020, 1, 1),
                })
            },
            "record.encumbrances[0].holder_credit_code",
        ),
    ];
    for (case, change, field) in title_cases {
        let mut record = title(&[(&alice(), 10_000)]);
        change(&mut record);
        let status = app
            .housing()
            .publish_property_title(proto::PublishPropertyTitleRequest {
                meta: meta("p-1", 1),
                record: Some(record),
            })
            .await
            .expect_err(case);
        let fields: Vec<String> = violations(&status).into_iter().map(|(f, _)| f).collect();
        assert!(fields.contains(&field.to_owned()), "{case}: {fields:?}");
    }

    let loan_cases: Vec<Case<proto::ProvidentFundLoan>> = vec![
        (
            "outstanding above principal",
            |r| r.outstanding_principal_fen = r.principal_fen + 1,
            "record.outstanding_principal_fen",
        ),
        (
            "negative outstanding",
            |r| r.outstanding_principal_fen = -1,
            "record.outstanding_principal_fen",
        ),
        (
            "settled with debt",
            |r| r.status = proto::LoanStatus::Settled as i32,
            "record.outstanding_principal_fen",
        ),
        (
            "zero principal",
            |r| r.principal_fen = 0,
            "record.principal_fen",
        ),
    ];
    for (case, change, field) in loan_cases {
        let mut record = loan(&alice(), proto::LoanStatus::Repaying, 1_000);
        change(&mut record);
        let status = app
            .fund()
            .publish_loan(proto::PublishLoanRequest {
                meta: meta("l-1", 1),
                record: Some(record),
            })
            .await
            .expect_err(case);
        let fields: Vec<String> = violations(&status).into_iter().map(|(f, _)| f).collect();
        assert!(fields.contains(&field.to_owned()), "{case}: {fields:?}");
    }

    let mut moved = household(&alice(), proto::HouseholdStatus::MovedOut);
    moved.destination_region_code.clear();
    let status = app
        .police()
        .publish_household_registration(proto::PublishHouseholdRegistrationRequest {
            meta: meta("h-1", 1),
            record: Some(moved),
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&status)[0].0, "record.destination_region_code");

    let (a, b) = (alice(), bea());
    let status = app
        .housing()
        .publish_sale_contract(proto::PublishSaleContractRequest {
            meta: meta("s-1", 1),
            record: Some(contract(&[&a], &[&b, &a])),
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&status)[0].0, "record.buyer_ids");

    let signed_in_9999 = proto::SaleContract {
        signed_on: date(9999, 12, 31),
        ..contract(&[&a], &[&b])
    };
    let status = app
        .housing()
        .publish_sale_contract(proto::PublishSaleContractRequest {
            meta: meta("s-1", 1),
            record: Some(signed_in_9999),
        })
        .await
        .unwrap_err();
    let (field, description) = violations(&status).remove(0);
    assert_eq!(field, "record.signed_on");
    assert!(
        description.contains("must not be in the future"),
        "{description}"
    );

    let mut transfer = certificate(&bea());
    transfer.to_region_code = transfer.from_region_code.clone();
    let status = app
        .social()
        .publish_transfer_out_certificate(proto::PublishTransferOutCertificateRequest {
            meta: meta("t-1", 1),
            record: Some(transfer),
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&status)[0].0, "record.to_region_code");

    let status = app
        .fund()
        .delete_record(proto::DeleteRecordRequest {
            record_type: "property_title".into(),
            meta: meta("x", 1),
        })
        .await
        .unwrap_err();
    let (field, description) = violations(&status).remove(0);
    assert_eq!(field, "record_type");
    assert!(description.contains("account, loan"), "{description}");

    // A message over the server's size limit: RESOURCE_EXHAUSTED, as gRPC's status table
    // has it, naming the limit.
    let mut huge = identity(&alice());
    huge.name = "x".repeat(5 << 20);
    let status = app
        .police()
        .publish_identity(proto::PublishIdentityRequest {
            meta: meta("i-1", 1),
            record: Some(huge),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().contains("4194304 bytes (4 MiB)"),
        "{status:?}"
    );
    let (_, metrics) = http_get(app.admin.expect("admin http"), "/metrics").await;
    assert_eq!(
        metric(
            &metrics,
            r#"govlink_limited_requests_total{limit="message_size",agency="public-security"}"#
        ),
        1.0,
        "the refusal is counted"
    );

    for agency in [
        Agency::SocialSecurity,
        Agency::PublicSecurity,
        Agency::Housing,
        Agency::ProvidentFund,
    ] {
        let topic = app.topics.records(agency);
        assert_eq!(
            message_count(&topic, 3).await,
            0,
            "nothing invalid reached {topic}"
        );
    }
    app.stop().await;
}

/// The largest requests the server decodes, full of resident IDs: each gets a short
/// INVALID_ARGUMENT naming the right fields (not a protocol error from oversized headers),
/// and the server answers a normal publish right after.
#[tokio::test]
async fn the_largest_requests_full_of_ids_get_a_capped_invalid_argument() {
    let app = spawn_app().await;
    let (a, b) = (alice(), bea());

    // One sale contract with 200k buyers, all the same person.
    let request = proto::PublishSaleContractRequest {
        meta: meta("s-big", 1),
        record: Some(contract(&[&a], &vec![b.as_str(); 200_000])),
    };
    let size = request.encoded_len();
    assert!(
        (MAX_MESSAGE_BYTES * 9 / 10..MAX_MESSAGE_BYTES).contains(&size),
        "{size} bytes"
    );
    let status = app
        .housing()
        .publish_sale_contract(request)
        .await
        .unwrap_err();
    assert_eq!(
        violations(&status),
        [(
            "record.buyer_ids".to_owned(),
            "must have at most 64 entries, not 200000".to_owned()
        )]
    );

    // A batch of the most items, each a title with 300 distinct owners: one violation per
    // item, collected for the first items only.
    let owners: Vec<String> = (0..300)
        .map(|i| {
            person(&format!(
                "1101051980{:02}{:02}{:03}",
                1 + i % 12,
                1 + i % 28,
                i
            ))
        })
        .collect();
    let owners: Vec<(&str, u32)> = owners.iter().map(|id| (id.as_str(), 1)).collect();
    let items: Vec<proto::HousingBatchItem> = (0..app.settings.max_batch)
        .map(|i| proto::HousingBatchItem {
            meta: meta(&format!("p-{i}"), 1),
            record: Some(proto::housing_batch_item::Record::PropertyTitle(title(
                &owners,
            ))),
        })
        .collect();
    let request = proto::PublishHousingBatchRequest { items };
    let size = request.encoded_len();
    assert!(
        (MAX_MESSAGE_BYTES * 3 / 4..MAX_MESSAGE_BYTES).contains(&size),
        "{size} bytes"
    );
    let status = app.housing().publish_batch(request).await.unwrap_err();
    let found = violations(&status);
    assert!((10..=50).contains(&found.len()), "{}", found.len());
    for (i, (field, description)) in found.iter().enumerate() {
        assert_eq!(field, &format!("items[{i}].property_title.owners"));
        assert_eq!(description, "must have at most 64 entries, not 300");
    }
    assert!(
        status.message().contains(" more"),
        "the message says more were found: {}",
        status.message()
    );
    assert!(status.message().len() < 1024, "{}", status.message());

    // The server is still answering, and publishes what is valid.
    let ack = app
        .housing()
        .publish_sale_contract(proto::PublishSaleContractRequest {
            meta: meta("s-ok", 1),
            record: Some(contract(&[&a], &[&b])),
        })
        .await
        .expect("a normal publish after the big ones")
        .into_inner();
    assert_eq!(ack.record_key, "housing/sale_contract/s-ok");
    let stored = read_at(&position(&ack)).await;
    assert_eq!(key_of(&stored), "housing/sale_contract/s-ok");
    app.stop().await;
}
