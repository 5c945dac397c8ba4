//! Generated requests: valid-looking messages whose fields hold anything from a valid
//! value to hostile input (see `fields`), so the checks are reached at every depth, not
//! only refused at the first field.

use govlink::proto::{self, Agency};
use govlink::records::{AGENCIES, RecordType};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

use super::checks::{AdapterRequest, CasesRequest, MAX_BATCH, ResolverRequest};
use super::fields::{
    credit_code, date, enumeration, money, person_id, region, repeated, text, timestamp, unit,
};

pub fn meta() -> BoxedStrategy<Option<proto::PublishMeta>> {
    let record_id = prop_oneof![4 => "[A-Za-z0-9._:-]{1,64}", 1 => text()];
    let version = prop_oneof![4 => 1u64..100, 1 => any::<u64>()];
    prop::option::weighted(
        0.95,
        (record_id, version, text(), timestamp()).prop_map(
            |(record_id, version, source_event_id, occurred_at)| proto::PublishMeta {
                record_id,
                version,
                source_event_id,
                occurred_at,
            },
        ),
    )
    .boxed()
}

prop_compose! {
    pub fn enrollment()(
        person_id in person_id(), insurance_type in enumeration(), region_code in region(),
        employer_credit_code in credit_code(), status in enumeration(), start_date in date(),
        end_date in date(),
    ) -> proto::Enrollment {
        proto::Enrollment {
            person_id, insurance_type, region_code, employer_credit_code, status, start_date,
            end_date,
        }
    }
}

prop_compose! {
    pub fn contribution_period()(
        person_id in person_id(), insurance_type in enumeration(), region_code in region(),
        employer_credit_code in credit_code(), year in prop_oneof![1990i32..2100, any::<i32>()],
        month in prop_oneof![0i32..14, any::<i32>()], base_fen in money(),
        personal_fen in money(), employer_fen in money(),
    ) -> proto::ContributionPeriod {
        proto::ContributionPeriod {
            person_id, insurance_type, region_code, employer_credit_code,
            period: Some(proto::YearMonth { year, month }), base_fen, personal_fen,
            employer_fen,
        }
    }
}

prop_compose! {
    pub fn certificate()(
        person_id in person_id(), insurance_type in enumeration(),
        certificate_number in text(), from_region_code in region(),
        to_region_code in region(), issued_on in date(), contribution_months in any::<i32>(),
        personal_account_balance_fen in money(),
    ) -> proto::TransferOutCertificate {
        proto::TransferOutCertificate {
            person_id, insurance_type, certificate_number, from_region_code, to_region_code,
            issued_on, contribution_months, personal_account_balance_fen,
        }
    }
}

prop_compose! {
    pub fn identity()(
        person_id in person_id(), name in text(), sex in enumeration(), birth_date in date(),
    ) -> proto::Identity {
        proto::Identity { person_id, name, sex, birth_date }
    }
}

prop_compose! {
    pub fn household()(
        person_id in person_id(), household_number in text(), region_code in region(),
        address in text(), status in enumeration(),
        property_unit_number in prop_oneof![Just(String::new()), unit()],
        registered_on in date(),
        destination_region_code in prop_oneof![Just(String::new()), region()],
        destination_address in text(),
    ) -> proto::HouseholdRegistration {
        proto::HouseholdRegistration {
            person_id, household_number, region_code, address, status, property_unit_number,
            registered_on, destination_region_code, destination_address,
        }
    }
}

fn owner() -> BoxedStrategy<proto::Owner> {
    (
        person_id(),
        prop_oneof![Just(10_000u32), 0u32..10_001, any::<u32>()],
    )
        .prop_map(|(person_id, share_basis_points)| proto::Owner {
            person_id,
            share_basis_points,
        })
        .boxed()
}

fn encumbrance() -> BoxedStrategy<proto::Encumbrance> {
    (enumeration(), credit_code(), money(), date())
        .prop_map(
            |(kind, holder_credit_code, amount_fen, registered_on)| proto::Encumbrance {
                kind,
                holder_credit_code,
                amount_fen,
                registered_on,
            },
        )
        .boxed()
}

prop_compose! {
    pub fn title()(
        unit_number in unit(), certificate_number in text(), address in text(),
        owners in repeated(owner()), floor_area_dm2 in any::<u64>(),
        encumbrances in repeated(encumbrance()), registered_on in date(),
    ) -> proto::PropertyTitle {
        proto::PropertyTitle {
            unit_number, certificate_number, address, owners, floor_area_dm2, encumbrances,
            registered_on,
        }
    }
}

prop_compose! {
    pub fn contract()(
        contract_number in text(), unit_number in unit(), seller_ids in repeated(person_id()),
        buyer_ids in repeated(person_id()), price_fen in money(), status in enumeration(),
        signed_on in date(),
    ) -> proto::SaleContract {
        proto::SaleContract {
            contract_number, unit_number, seller_ids, buyer_ids, price_fen, status, signed_on,
        }
    }
}

prop_compose! {
    pub fn account()(
        person_id in person_id(), account_number in text(), region_code in region(),
        employer_credit_code in credit_code(), status in enumeration(),
        balance_fen in money(), monthly_deposit_fen in money(), opened_on in date(),
        last_deposit_month in prop::option::of(
            (prop_oneof![1990i32..2030, any::<i32>()], prop_oneof![0i32..14, any::<i32>()])
                .prop_map(|(year, month)| proto::YearMonth { year, month })
        ),
        consecutive_deposit_months in prop_oneof![0u32..1300, any::<u32>()],
    ) -> proto::ProvidentFundAccount {
        proto::ProvidentFundAccount {
            person_id, account_number, region_code, employer_credit_code, status,
            balance_fen, monthly_deposit_fen, opened_on, last_deposit_month,
            consecutive_deposit_months,
        }
    }
}

prop_compose! {
    pub fn loan()(
        borrower_id in person_id(), loan_contract_number in text(), unit_number in unit(),
        principal_fen in money(), outstanding_principal_fen in money(),
        status in enumeration(), issued_on in date(),
    ) -> proto::ProvidentFundLoan {
        proto::ProvidentFundLoan {
            borrower_id, loan_contract_number, unit_number, principal_fen,
            outstanding_principal_fen, status, issued_on,
        }
    }
}

/// A record type name to delete: any agency's, or anything.
fn record_type_name() -> BoxedStrategy<String> {
    prop_oneof![
        3 => select(&RecordType::ALL[..]).prop_map(|t| t.as_str().to_owned()),
        1 => text(),
    ]
    .boxed()
}

/// A batch's items: none, a few, or copies of one up to past the batch limit.
fn items<T: Clone + std::fmt::Debug + 'static>(
    item: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<Vec<T>> {
    let item = item.boxed();
    prop_oneof![
        6 => vec(item.clone(), 0..6),
        1 => (item, MAX_BATCH - 2..MAX_BATCH + 3).prop_map(|(i, n)| vec![i; n]),
    ]
    .boxed()
}

fn social_item() -> BoxedStrategy<proto::SocialSecurityBatchItem> {
    use proto::social_security_batch_item::Record;
    let record = prop_oneof![
        enrollment().prop_map(Record::Enrollment),
        contribution_period().prop_map(Record::ContributionPeriod),
        certificate().prop_map(Record::TransferOutCertificate),
        record_type_name().prop_map(Record::DeletedRecordType),
    ];
    (meta(), prop::option::weighted(0.95, record))
        .prop_map(|(meta, record)| proto::SocialSecurityBatchItem { meta, record })
        .boxed()
}

fn police_item() -> BoxedStrategy<proto::PublicSecurityBatchItem> {
    use proto::public_security_batch_item::Record;
    let record = prop_oneof![
        identity().prop_map(Record::Identity),
        household().prop_map(Record::HouseholdRegistration),
        record_type_name().prop_map(Record::DeletedRecordType),
    ];
    (meta(), prop::option::weighted(0.95, record))
        .prop_map(|(meta, record)| proto::PublicSecurityBatchItem { meta, record })
        .boxed()
}

fn housing_item() -> BoxedStrategy<proto::HousingBatchItem> {
    use proto::housing_batch_item::Record;
    let record = prop_oneof![
        title().prop_map(Record::PropertyTitle),
        contract().prop_map(Record::SaleContract),
        record_type_name().prop_map(Record::DeletedRecordType),
    ];
    (meta(), prop::option::weighted(0.95, record))
        .prop_map(|(meta, record)| proto::HousingBatchItem { meta, record })
        .boxed()
}

fn fund_item() -> BoxedStrategy<proto::ProvidentFundBatchItem> {
    use proto::provident_fund_batch_item::Record;
    let record = prop_oneof![
        account().prop_map(Record::Account),
        loan().prop_map(Record::Loan),
        record_type_name().prop_map(Record::DeletedRecordType),
    ];
    (meta(), prop::option::weighted(0.95, record))
        .prop_map(|(meta, record)| proto::ProvidentFundBatchItem { meta, record })
        .boxed()
}

/// A record, mostly present.
fn record<T: std::fmt::Debug + 'static>(
    record: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<Option<T>> {
    prop::option::weighted(0.95, record).boxed()
}

/// Any adapter request.
pub fn adapter_request() -> BoxedStrategy<AdapterRequest> {
    use AdapterRequest as R;
    prop_oneof![
        (meta(), record(enrollment())).prop_map(|(meta, record)| R::Enrollment(
            proto::PublishEnrollmentRequest { meta, record }
        )),
        (meta(), record(contribution_period())).prop_map(|(meta, record)| {
            R::ContributionPeriod(proto::PublishContributionPeriodRequest { meta, record })
        }),
        (meta(), record(certificate())).prop_map(|(meta, record)| {
            R::TransferOutCertificate(proto::PublishTransferOutCertificateRequest { meta, record })
        }),
        (meta(), record(identity()))
            .prop_map(|(meta, record)| R::Identity(proto::PublishIdentityRequest { meta, record })),
        (meta(), record(household())).prop_map(|(meta, record)| {
            R::Household(proto::PublishHouseholdRegistrationRequest { meta, record })
        }),
        (meta(), record(title())).prop_map(|(meta, record)| R::Title(
            proto::PublishPropertyTitleRequest { meta, record }
        )),
        (meta(), record(contract())).prop_map(|(meta, record)| R::Contract(
            proto::PublishSaleContractRequest { meta, record }
        )),
        (meta(), record(account()))
            .prop_map(|(meta, record)| R::Account(proto::PublishAccountRequest { meta, record })),
        (meta(), record(loan()))
            .prop_map(|(meta, record)| R::Loan(proto::PublishLoanRequest { meta, record })),
        (select(&AGENCIES[..]), meta(), record_type_name()).prop_map(
            |(agency, meta, record_type): (Agency, _, _)| {
                R::Delete(agency, proto::DeleteRecordRequest { record_type, meta })
            }
        ),
        items(social_item())
            .prop_map(|items| R::SocialBatch(proto::PublishSocialSecurityBatchRequest { items })),
        items(police_item())
            .prop_map(|items| R::PoliceBatch(proto::PublishPublicSecurityBatchRequest { items })),
        items(housing_item())
            .prop_map(|items| R::HousingBatch(proto::PublishHousingBatchRequest { items })),
        items(fund_item())
            .prop_map(|items| R::FundBatch(proto::PublishProvidentFundBatchRequest { items })),
    ]
    .boxed()
}

/// A position a lookup waits for: a real record topic or not, any partition and offset.
fn position() -> BoxedStrategy<proto::Position> {
    let topic = prop_oneof![
        3 => select(&AGENCIES[..])
            .prop_map(|a| govlink::kafka::Topics::new(String::new()).records(a)),
        1 => text(),
    ];
    let partition = prop_oneof![3 => 0i32..8, 1 => any::<i32>()];
    let offset = prop_oneof![3 => 0i64..1_000_000, 1 => any::<i64>()];
    (topic, partition, offset)
        .prop_map(|(topic, partition, offset)| proto::Position {
            topic,
            partition,
            offset,
        })
        .boxed()
}

fn purpose() -> BoxedStrategy<String> {
    prop_oneof![
        3 => select(&["property-transfer", "social-security-transfer", "bench"][..])
            .prop_map(String::from),
        1 => text(),
    ]
    .boxed()
}

fn case_id() -> BoxedStrategy<String> {
    prop_oneof![2 => Just(String::new()), 2 => "[A-Za-z0-9._:-]{1,64}", 1 => text()].boxed()
}

/// Any resolver request.
pub fn resolver_request() -> BoxedStrategy<ResolverRequest> {
    use ResolverRequest as R;
    let subject = prop::option::weighted(
        0.9,
        (enumeration(), prop_oneof![person_id(), unit()])
            .prop_map(|(kind, id)| proto::Subject { kind, id }),
    );
    prop_oneof![
        (
            prop_oneof![Just("housing/property_title/p-1".to_owned()), text()],
            repeated(position())
        )
            .prop_map(|(record_key, min_positions)| {
                R::GetRecord(proto::GetRecordRequest {
                    record_key,
                    min_positions,
                })
            }),
        (subject, repeated(position())).prop_map(|(subject, min_positions)| {
            R::ListSubjectRecords(proto::ListSubjectRecordsRequest {
                subject,
                min_positions,
            })
        }),
        (person_id(), purpose(), case_id(), repeated(position())).prop_map(
            |(person_id, purpose, case_id, min_positions)| {
                R::Profile(proto::GetPersonProfileRequest {
                    person_id,
                    purpose,
                    case_id,
                    min_positions,
                })
            }
        ),
        (
            unit(),
            repeated(person_id()),
            repeated(person_id()),
            purpose(),
            case_id(),
            repeated(position())
        )
            .prop_map(
                |(unit_number, seller_ids, buyer_ids, purpose, case_id, min_positions)| {
                    R::PropertyTransfer(proto::CheckPropertyTransferRequest {
                        unit_number,
                        seller_ids,
                        buyer_ids,
                        purpose,
                        case_id,
                        min_positions,
                    })
                }
            ),
        (
            person_id(),
            region(),
            region(),
            purpose(),
            case_id(),
            repeated(position())
        )
            .prop_map(
                |(person_id, from_region, to_region, purpose, case_id, min_positions)| {
                    R::SocialSecurityTransfer(proto::CheckSocialSecurityTransferRequest {
                        person_id,
                        from_region,
                        to_region,
                        purpose,
                        case_id,
                        min_positions,
                    })
                }
            ),
        (
            person_id(),
            purpose(),
            prop_oneof![0u32..2000, any::<u32>()],
            prop_oneof![Just(String::new()), text(), "[0-9a-f]{0,700}"],
        )
            .prop_map(|(person_id, purpose, limit, page_token)| {
                R::DataAccesses(proto::ListDataAccessesRequest {
                    person_id,
                    purpose,
                    limit,
                    page_token,
                })
            }),
        (
            person_id(),
            unit(),
            money(),
            purpose(),
            case_id(),
            repeated(position())
        )
            .prop_map(
                |(person_id, property_unit_number, amount_fen, purpose, case_id, min_positions)| {
                    R::ProvidentFundLoan(proto::CheckProvidentFundLoanRequest {
                        person_id,
                        property_unit_number,
                        amount_fen,
                        purpose,
                        case_id,
                        min_positions,
                    })
                }
            ),
        (
            person_id(),
            purpose(),
            prop_oneof![Just(String::new()), text(), "[0-9a-f]{0,120}"],
        )
            .prop_map(|(person_id, purpose, after_cursor)| {
                R::WatchAccesses(proto::WatchDataAccessesRequest {
                    person_id,
                    purpose,
                    after_cursor,
                })
            }),
    ]
    .boxed()
}

fn case_params() -> BoxedStrategy<Option<proto::CaseParams>> {
    use proto::case_params::Kind;
    let kind = prop_oneof![
        (unit(), text(), repeated(person_id()), repeated(person_id())).prop_map(
            |(unit_number, contract_number, seller_ids, buyer_ids)| {
                Kind::PropertyTransfer(proto::PropertyTransferParams {
                    unit_number,
                    contract_number,
                    seller_ids,
                    buyer_ids,
                })
            }
        ),
        (person_id(), enumeration(), region(), region()).prop_map(
            |(person_id, insurance_type, from_region_code, to_region_code)| {
                Kind::SocialSecurityTransfer(proto::SocialSecurityTransferParams {
                    person_id,
                    insurance_type,
                    from_region_code,
                    to_region_code,
                })
            }
        ),
        (person_id(), region(), region()).prop_map(
            |(person_id, from_region_code, to_region_code)| {
                Kind::ProvidentFundTransfer(proto::ProvidentFundTransferParams {
                    person_id,
                    from_region_code,
                    to_region_code,
                })
            }
        ),
        (person_id(), region()).prop_map(|(person_id, to_region_code)| {
            Kind::HouseholdMove(proto::HouseholdMoveParams {
                person_id,
                to_region_code,
            })
        }),
        (person_id(), unit(), money()).prop_map(|(person_id, unit_number, amount_fen)| {
            Kind::ProvidentFundLoan(proto::ProvidentFundLoanParams {
                person_id,
                unit_number,
                amount_fen,
            })
        }),
    ];
    prop::option::weighted(
        0.9,
        prop::option::weighted(0.95, kind).prop_map(|kind| proto::CaseParams { kind }),
    )
    .boxed()
}

/// Any cases or tasks request.
pub fn cases_request() -> BoxedStrategy<CasesRequest> {
    use CasesRequest as R;
    prop_oneof![
        (case_id(), purpose(), case_params()).prop_map(|(request_id, purpose, params)| {
            R::Open(proto::OpenCaseRequest {
                request_id,
                purpose,
                params,
                min_positions: Vec::new(),
            })
        }),
        case_id().prop_map(|case_id| R::Get(proto::GetCaseRequest { case_id })),
        (case_id(), any::<u64>()).prop_map(|(case_id, after_sequence)| {
            R::Watch(proto::WatchCaseRequest {
                case_id,
                after_sequence,
            })
        }),
        (
            enumeration(),
            enumeration(),
            enumeration(),
            any::<bool>(),
            prop_oneof![Just(String::new()), person_id()],
            prop_oneof![0u32..600, any::<u32>()]
        )
            .prop_map(
                |(kind, state, open_steps_of, overdue_only, person_id, limit)| {
                    R::List(proto::ListCasesRequest {
                        kind,
                        state,
                        open_steps_of,
                        overdue_only,
                        person_id,
                        limit,
                    })
                }
            ),
        (case_id(), text())
            .prop_map(|(case_id, reason)| R::Cancel(proto::CancelCaseRequest { case_id, reason })),
        (text(), text(), text()).prop_map(|(task_id, outcome, note)| {
            R::Complete(proto::CompleteTaskRequest {
                task_id,
                outcome,
                note,
            })
        }),
        (text(), text())
            .prop_map(|(task_id, reason)| R::Reject(proto::RejectTaskRequest { task_id, reason })),
    ]
    .boxed()
}
