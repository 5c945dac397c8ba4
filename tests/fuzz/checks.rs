//! Each request message through the checks its service runs, and what must hold of the
//! outcome: a refusal names fields of the request (and becomes a well-formed
//! `INVALID_ARGUMENT`); an accepted record passes the materializer's own check.

use std::collections::BTreeMap;
use std::time::Duration;

use govlink::adapters::{
    Housing, Item, ProvidentFund, PublicSecurity, SocialSecurity, check_batch_size, check_item,
    check_items,
};
use govlink::cases::service::{
    validate_cancel_case, validate_case_id, validate_list_cases, validate_open_case,
};
use govlink::cases::tasks::{TaskId, validate_complete_task, validate_reject_task};
use govlink::kafka::Topics;
use govlink::proto::{self, Agency, record_event::Payload};
use govlink::records::{AGENCIES, Horizon, RecordKey, Violations, validate_event};
use govlink::resolver::Positions;
use govlink::resolver::checks::PurchaseRule;
use govlink::resolver::query::{
    QueryError, parse_data_accesses, parse_person_profile, parse_property_transfer,
    parse_provident_fund_loan, parse_social_security_transfer, parse_subject,
    parse_watch_data_accesses,
};
use govlink::resolver::store::{MemoryStore, Store};
use prost::Message;
use tonic_types::StatusExt;

/// The most items a batch may carry here (the default setting).
pub const MAX_BATCH: usize = 500;

/// What the checks need of a running service: the record topics, the purchase rules, the
/// clock skew allowed.
pub struct Checks {
    positions: Positions,
    rules: Vec<PurchaseRule>,
    horizon: Horizon,
}

impl Checks {
    pub fn new() -> Checks {
        let topics = Topics::new(String::new());
        let partitions: BTreeMap<String, i32> =
            AGENCIES.iter().map(|a| (topics.records(*a), 6)).collect();
        Checks {
            positions: Positions::new(Store::Memory(MemoryStore::new()), partitions),
            rules: vec![PurchaseRule {
                region_prefix: "1101".into(),
                months_required: 24,
                within_months: 36,
            }],
            horizon: Horizon::now(Duration::from_secs(3600)),
        }
    }

    /// A single-record publish or a deletion of `agency`.
    pub fn publish(&self, agency: Agency, item: Item, roots: &[&str]) {
        match check_item(agency, item, &self.horizon) {
            Ok(prepared) => accepted(agency, prepared.event()),
            Err(v) => refused(&v, roots),
        }
    }

    /// A batch of `agency`: its size, then its items, as `PublishBatch` checks them.
    pub fn batch(&self, agency: Agency, items: Vec<Item>) {
        let size = check_batch_size(items.len(), MAX_BATCH);
        if !size.is_empty() {
            assert!(items.is_empty() || items.len() > MAX_BATCH, "{size}");
            return refused(&size, &["items"]);
        }
        match check_items(agency, items, &self.horizon) {
            Ok(prepared) => {
                for p in &prepared {
                    accepted(agency, p.event());
                }
            }
            Err(v) => refused(&v, &["items"]),
        }
    }

    /// Any adapter request message.
    pub fn adapter(&self, request: AdapterRequest) {
        use AdapterRequest as R;
        let single = &["meta", "record"];
        let (agency, item) = match request {
            R::Enrollment(r) => (
                Agency::SocialSecurity,
                Item::upsert(r.meta, r.record.map(Payload::Enrollment)),
            ),
            R::ContributionPeriod(r) => (
                Agency::SocialSecurity,
                Item::upsert(r.meta, r.record.map(Payload::ContributionPeriod)),
            ),
            R::TransferOutCertificate(r) => (
                Agency::SocialSecurity,
                Item::upsert(r.meta, r.record.map(Payload::TransferOutCertificate)),
            ),
            R::Identity(r) => (
                Agency::PublicSecurity,
                Item::upsert(r.meta, r.record.map(Payload::Identity)),
            ),
            R::Household(r) => (
                Agency::PublicSecurity,
                Item::upsert(r.meta, r.record.map(Payload::HouseholdRegistration)),
            ),
            R::Title(r) => (
                Agency::Housing,
                Item::upsert(r.meta, r.record.map(Payload::PropertyTitle)),
            ),
            R::Contract(r) => (
                Agency::Housing,
                Item::upsert(r.meta, r.record.map(Payload::SaleContract)),
            ),
            R::Account(r) => (
                Agency::ProvidentFund,
                Item::upsert(r.meta, r.record.map(Payload::ProvidentFundAccount)),
            ),
            R::Loan(r) => (
                Agency::ProvidentFund,
                Item::upsert(r.meta, r.record.map(Payload::ProvidentFundLoan)),
            ),
            R::Delete(agency, r) => {
                let item = Item::delete(r.meta, r.record_type);
                return self.publish(agency, item, &["meta", "record_type"]);
            }
            R::SocialBatch(r) => {
                return self.batch_of(Agency::SocialSecurity, r.items, SocialSecurity::batch_item);
            }
            R::PoliceBatch(r) => {
                return self.batch_of(Agency::PublicSecurity, r.items, PublicSecurity::batch_item);
            }
            R::HousingBatch(r) => {
                return self.batch_of(Agency::Housing, r.items, Housing::batch_item);
            }
            R::FundBatch(r) => {
                return self.batch_of(Agency::ProvidentFund, r.items, ProvidentFund::batch_item);
            }
        };
        self.publish(agency, item, single);
    }

    fn batch_of<I>(
        &self,
        agency: Agency,
        items: Vec<I>,
        split: impl Fn(I) -> (Option<proto::PublishMeta>, govlink::adapters::BatchOneof),
    ) {
        self.batch(agency, govlink::adapters::batch_items(items, split));
    }

    /// Any resolver request message.
    pub fn resolver(&self, request: ResolverRequest) {
        use ResolverRequest as R;
        match request {
            R::GetRecord(r) => {
                // The service names `record_key` for any parse error.
                let _ = RecordKey::parse(&r.record_key);
                self.positions_of(&r.min_positions);
            }
            R::ListSubjectRecords(r) => {
                if let Err(v) = parse_subject(r.subject.as_ref()) {
                    refused(&v, &["subject"]);
                }
                self.positions_of(&r.min_positions);
            }
            R::Profile(r) => {
                if let Err(v) = parse_person_profile(&r, &self.positions) {
                    refused(&v, &["person_id", "purpose", "case_id", "min_positions"]);
                }
            }
            R::PropertyTransfer(r) => {
                match parse_property_transfer(&r, &self.positions, &self.rules) {
                    Ok(_) => {}
                    Err(QueryError::Invalid(v)) => refused(
                        &v,
                        &[
                            "unit_number",
                            "seller_ids",
                            "buyer_ids",
                            "purpose",
                            "case_id",
                            "min_positions",
                        ],
                    ),
                    Err(e) => panic!("a request check failed other than for its fields: {e}"),
                }
            }
            R::SocialSecurityTransfer(r) => {
                if let Err(v) = parse_social_security_transfer(&r, &self.positions) {
                    refused(
                        &v,
                        &[
                            "person_id",
                            "from_region",
                            "to_region",
                            "purpose",
                            "case_id",
                            "min_positions",
                        ],
                    );
                }
            }
            R::DataAccesses(r) => {
                if let Err(v) = parse_data_accesses(&r) {
                    refused(&v, &["person_id", "purpose", "limit", "page_token"]);
                }
            }
            R::ProvidentFundLoan(r) => {
                if let Err(v) = parse_provident_fund_loan(&r, &self.positions) {
                    refused(
                        &v,
                        &[
                            "person_id",
                            "property_unit_number",
                            "amount_fen",
                            "purpose",
                            "case_id",
                            "min_positions",
                        ],
                    );
                }
            }
            R::WatchAccesses(r) => {
                if let Err(v) = parse_watch_data_accesses(&r) {
                    refused(&v, &["person_id", "purpose", "after_cursor"]);
                }
            }
        }
    }

    fn positions_of(&self, positions: &[proto::Position]) {
        let mut v = Violations::default();
        self.positions.check(positions, "min_positions", &mut v);
        if !v.is_empty() {
            refused(&v, &["min_positions"]);
        }
    }

    /// Any cases or tasks request message.
    pub fn cases(&self, request: CasesRequest) {
        use CasesRequest as R;
        let (v, roots): (Violations, &[&str]) = match request {
            R::Open(r) => (validate_open_case(&r), &["request_id", "purpose", "params"]),
            R::Get(r) => (validate_case_id(&r.case_id), &["case_id"]),
            R::Watch(r) => (validate_case_id(&r.case_id), &["case_id"]),
            R::List(r) => (validate_list_cases(&r), &["limit", "person_id"]),
            R::Cancel(r) => {
                let v = validate_case_id(&r.case_id);
                if !v.is_empty() {
                    refused(&v, &["case_id"]);
                }
                (validate_cancel_case(&r), &["reason"])
            }
            R::Complete(r) => {
                task_id(&r.task_id);
                (validate_complete_task(&r), &["outcome", "note"])
            }
            R::Reject(r) => {
                task_id(&r.task_id);
                (validate_reject_task(&r), &["reason"])
            }
        };
        if !v.is_empty() {
            refused(&v, roots);
        }
    }

    /// `bytes` decoded as every request message of the contract; each that decodes goes
    /// through its checks.
    pub fn every_decoder(&self, bytes: &[u8]) {
        for request in AdapterRequest::decode_all(bytes) {
            self.adapter(request);
        }
        for request in ResolverRequest::decode_all(bytes) {
            self.resolver(request);
        }
        for request in CasesRequest::decode_all(bytes) {
            self.cases(request);
        }
        // Requests without checks of their own still must decode without harm.
        let _ = proto::StreamTasksRequest::decode(bytes);
        let _ = proto::AckTaskRequest::decode(bytes);
    }
}

/// A refusal: at least one violation, each naming a field of the request whose path
/// starts with one of `roots`, and a status that fits in HTTP/2 headers.
pub fn refused(v: &Violations, roots: &[&str]) {
    assert!(!v.is_empty(), "a refusal without a reason");
    for violation in v.iter() {
        let root = violation.field.split(['.', '[']).next().unwrap_or_default();
        assert!(
            roots.contains(&root),
            "{:?} is not a field of the request (fields: {roots:?}): {}",
            violation.field,
            violation.description
        );
        assert!(!violation.description.is_empty(), "{}", violation.field);
    }
    let status = govlink::grpc::invalid_argument(v);
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    let details = status
        .get_details_bad_request()
        .expect("a BadRequest detail");
    assert!(!details.field_violations.is_empty(), "{}", status.message());
    let response = status.into_http::<()>();
    assert!(response.headers().contains_key("grpc-status"));
}

/// An event an adapter would publish: the materializer must not dead-letter it.
fn accepted(agency: Agency, event: &proto::RecordEvent) {
    if let Err(v) = validate_event(&mut event.clone(), agency) {
        panic!("the adapter accepts what the materializer refuses: {v}");
    }
}

macro_rules! requests {
    ($(#[$doc:meta])* $name:ident { $($variant:ident($ty:ty)),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub enum $name {
            $($variant($ty),)*
        }

        impl $name {
            /// `bytes` as each of these messages, where it decodes.
            pub fn decode_all(bytes: &[u8]) -> Vec<$name> {
                let mut all = Vec::new();
                $(
                    if let Ok(m) = <$ty>::decode(bytes) {
                        all.push($name::$variant(m));
                    }
                )*
                all
            }

            /// The message's encoding.
            pub fn encode(&self) -> Vec<u8> {
                match self {
                    $($name::$variant(m) => m.encode_to_vec(),)*
                }
            }
        }
    };
}

/// The deletion of a record, at one agency's adapter.
pub type Deletion = proto::DeleteRecordRequest;

/// The adapters' requests (the deletion is the same message for all four agencies).
#[derive(Debug, Clone)]
pub enum AdapterRequest {
    Enrollment(proto::PublishEnrollmentRequest),
    ContributionPeriod(proto::PublishContributionPeriodRequest),
    TransferOutCertificate(proto::PublishTransferOutCertificateRequest),
    Identity(proto::PublishIdentityRequest),
    Household(proto::PublishHouseholdRegistrationRequest),
    Title(proto::PublishPropertyTitleRequest),
    Contract(proto::PublishSaleContractRequest),
    Account(proto::PublishAccountRequest),
    Loan(proto::PublishLoanRequest),
    Delete(Agency, Deletion),
    SocialBatch(proto::PublishSocialSecurityBatchRequest),
    PoliceBatch(proto::PublishPublicSecurityBatchRequest),
    HousingBatch(proto::PublishHousingBatchRequest),
    FundBatch(proto::PublishProvidentFundBatchRequest),
}

impl AdapterRequest {
    /// `bytes` as each adapter request message, where it decodes (a deletion once per
    /// agency).
    pub fn decode_all(bytes: &[u8]) -> Vec<AdapterRequest> {
        use AdapterRequest as R;
        let mut all = Vec::new();
        let mut push = |r: Option<AdapterRequest>| all.extend(r);
        push(Message::decode(bytes).ok().map(R::Enrollment));
        push(Message::decode(bytes).ok().map(R::ContributionPeriod));
        push(Message::decode(bytes).ok().map(R::TransferOutCertificate));
        push(Message::decode(bytes).ok().map(R::Identity));
        push(Message::decode(bytes).ok().map(R::Household));
        push(Message::decode(bytes).ok().map(R::Title));
        push(Message::decode(bytes).ok().map(R::Contract));
        push(Message::decode(bytes).ok().map(R::Account));
        push(Message::decode(bytes).ok().map(R::Loan));
        if let Ok(deletion) = Deletion::decode(bytes) {
            for agency in AGENCIES {
                push(Some(R::Delete(agency, deletion.clone())));
            }
        }
        push(Message::decode(bytes).ok().map(R::SocialBatch));
        push(Message::decode(bytes).ok().map(R::PoliceBatch));
        push(Message::decode(bytes).ok().map(R::HousingBatch));
        push(Message::decode(bytes).ok().map(R::FundBatch));
        all
    }

    /// The message's encoding.
    pub fn encode(&self) -> Vec<u8> {
        use AdapterRequest as R;
        match self {
            R::Enrollment(m) => m.encode_to_vec(),
            R::ContributionPeriod(m) => m.encode_to_vec(),
            R::TransferOutCertificate(m) => m.encode_to_vec(),
            R::Identity(m) => m.encode_to_vec(),
            R::Household(m) => m.encode_to_vec(),
            R::Title(m) => m.encode_to_vec(),
            R::Contract(m) => m.encode_to_vec(),
            R::Account(m) => m.encode_to_vec(),
            R::Loan(m) => m.encode_to_vec(),
            R::Delete(_, m) => m.encode_to_vec(),
            R::SocialBatch(m) => m.encode_to_vec(),
            R::PoliceBatch(m) => m.encode_to_vec(),
            R::HousingBatch(m) => m.encode_to_vec(),
            R::FundBatch(m) => m.encode_to_vec(),
        }
    }
}

requests! {
    /// The resolver's requests.
    ResolverRequest {
        GetRecord(proto::GetRecordRequest),
        ListSubjectRecords(proto::ListSubjectRecordsRequest),
        Profile(proto::GetPersonProfileRequest),
        PropertyTransfer(proto::CheckPropertyTransferRequest),
        SocialSecurityTransfer(proto::CheckSocialSecurityTransferRequest),
        DataAccesses(proto::ListDataAccessesRequest),
        WatchAccesses(proto::WatchDataAccessesRequest),
        ProvidentFundLoan(proto::CheckProvidentFundLoanRequest),
    }
}

requests! {
    /// The case engine's and the task inboxes' requests that carry fields to check.
    CasesRequest {
        Open(proto::OpenCaseRequest),
        Get(proto::GetCaseRequest),
        Watch(proto::WatchCaseRequest),
        List(proto::ListCasesRequest),
        Cancel(proto::CancelCaseRequest),
        Complete(proto::CompleteTaskRequest),
        Reject(proto::RejectTaskRequest),
    }
}

/// A task id is refused naming `task_id`, or parsed into parts that rebuild it.
fn task_id(text: &str) {
    match TaskId::parse(text) {
        Ok(id) => assert_eq!(format!("{}/{}.{}", id.case_id, id.step_id, id.number), text),
        Err(v) => refused(&v, &["task_id"]),
    }
}
