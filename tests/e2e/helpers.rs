//! Spawning the app, clients, fixtures and plain Kafka/Redis readers for the tests.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use govlink::app::{App, Role};
use govlink::config::Settings;
use govlink::domain::ResidentId;
use govlink::domain::resident_id::check_character;
use govlink::identity::AsRequester;
use govlink::identity::Requester;
use govlink::kafka::Topics;
use govlink::proto::housing_adapter_client::HousingAdapterClient;
use govlink::proto::provident_fund_adapter_client::ProvidentFundAdapterClient;
use govlink::proto::public_security_adapter_client::PublicSecurityAdapterClient;
use govlink::proto::resolver_client::ResolverClient;
use govlink::proto::social_security_adapter_client::SocialSecurityAdapterClient;
use govlink::proto::{self, Date, Position, PublishMeta};
use govlink::tls::certs::CertsDir;
use govlink::tls::client::ClientTls;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::OwnedMessage;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt;

/// The broker the suite runs against.
pub fn kafka() -> String {
    std::env::var("GOVLINK_TEST_KAFKA")
        .expect("GOVLINK_TEST_KAFKA is not set: run the suite with scripts/test.sh")
}

/// The Redis the suite runs against.
pub fn redis_url() -> String {
    std::env::var("GOVLINK_TEST_REDIS")
        .expect("GOVLINK_TEST_REDIS is not set: run the suite with scripts/test.sh")
}

/// A name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// Settings for one test: the suite's broker and Redis under fresh prefixes.
pub fn test_settings() -> Settings {
    let id = unique("t");
    Settings {
        kafka: Some(kafka()),
        redis: Some(redis_url()),
        grpc_addr: ([127, 0, 0, 1], 0).into(),
        admin_addr: "127.0.0.1:0".into(),
        topic_prefix: format!("{id}."),
        redis_prefix: format!("govlink-test:{id}:"),
        partitions: 3,
        consumer_group: format!("{id}-resolver"),
        request_timeout_ms: 15_000,
        shutdown_grace_ms: 5_000,
        policy: Some(example_policy()),
        insecure_requester_header: true,
        ..Settings::default()
    }
}

/// A certificates directory (`govlink certs init`) shared by the tests of this binary
/// that only need valid certificates.
pub fn test_certs() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(fresh_certs)
}

/// A certificates directory of the caller's own (one it may revoke in, or replace).
pub fn fresh_certs() -> PathBuf {
    let dir = std::env::temp_dir().join(unique("govlink-certs"));
    CertsDir::new(&dir).init().expect("certs init");
    dir
}

/// Settings for a secured app: mutual TLS with the certificates of `certs`, no header
/// identities.
pub fn secured_settings(certs: &Path) -> Settings {
    Settings {
        insecure_requester_header: false,
        ..test_settings().with_certs_dir(certs)
    }
}

/// A channel to `addr` (`host:port`) calling as `requester` with its certificate under
/// `certs`.
pub async fn tls_channel(addr: &str, certs: &Path, requester: &str) -> Channel {
    let requester = Requester::parse(requester).expect("a valid requester");
    ClientTls::new(certs)
        .connect(addr, &requester)
        .await
        .expect("a tls connection")
}

/// The example access policy, `deploy/policy.toml`.
pub fn example_policy() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/policy.toml").to_owned()
}

/// The resolver client type the tests use.
pub type Resolver =
    ResolverClient<tonic::service::interceptor::InterceptedService<Channel, AsRequester>>;

/// The record system (`<agency>/records`) of the agency of record key `key`; housing's
/// for a key that names no agency.
pub fn owner_of(key: &str) -> String {
    let agency = key.split('/').next().unwrap_or_default();
    match govlink::records::agency_from_slug(agency) {
        Some(_) => format!("{agency}/records"),
        None => "housing/records".into(),
    }
}

/// A resolver client on `channel` calling as `requester`, for `citizen` if given.
pub fn resolver_as(channel: Channel, requester: &str, citizen: Option<&str>) -> Resolver {
    let requester = Requester::parse(requester).expect("a valid requester");
    let citizen = citizen.map(|c| ResidentId::parse(c).expect("a valid resident ID"));
    ResolverClient::with_interceptor(channel, AsRequester::new(&requester, citizen.as_ref()))
}

/// A running app and clients for it.
pub struct TestApp {
    /// The settings it runs with.
    pub settings: Settings,
    /// Its topic names.
    pub topics: Topics,
    /// A channel to its gRPC server (over TLS, one without a client certificate: use
    /// [`TestApp::channel_as`]).
    pub channel: Channel,
    /// Its gRPC server's address.
    pub addr: std::net::SocketAddr,
    /// Its admin HTTP server's address.
    pub admin: Option<std::net::SocketAddr>,
    stop: CancellationToken,
    handle: JoinHandle<Result<(), govlink::app::AppError>>,
}

/// Builds and starts the app for `role` with `settings`.
pub async fn spawn_app_with(settings: Settings, role: Role) -> TestApp {
    let app = App::build(&settings, role).await.expect("app builds");
    let addr = app.grpc_addr();
    let admin = app.admin_addr();
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    let handle = tokio::spawn(app.run_until_stopped(async move { stopped.cancelled().await }));
    let channel = match &settings.tls_client_ca {
        Some(ca) => Channel::from_shared(format!("https://{addr}"))
            .unwrap()
            .tls_config(
                tonic::transport::ClientTlsConfig::new()
                    .ca_certificate(tonic::transport::Certificate::from_pem(
                        std::fs::read(ca).unwrap(),
                    ))
                    .domain_name("localhost"),
            )
            .unwrap()
            .connect()
            .await
            .expect("grpc server accepts tls connections"),
        None => Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .expect("grpc server accepts connections"),
    };
    TestApp {
        addr,
        topics: Topics::new(settings.topic_prefix.clone()),
        settings,
        channel,
        admin,
        stop,
        handle,
    }
}

/// The body of `/readyz` at `admin` once it answers `want`, waiting up to `within`.
pub async fn readyz_answers(admin: std::net::SocketAddr, want: u16, within: Duration) -> String {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let (code, body) = http_get(admin, "/readyz").await;
        if code == want {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "readyz never answered {want}; last {code}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A test app (as [`spawn_app`]) whose store is built: a lookup made now is answered
/// from it rather than `UNAVAILABLE` while its first generation is being built.
pub async fn spawn_ready_app() -> TestApp {
    let app = spawn_app().await;
    let admin = app.admin.expect("the test app serves its admin endpoints");
    readyz_answers(admin, 200, Duration::from_secs(60)).await;
    app
}

/// `GET path` from the HTTP server at `addr`: the status code and the body.
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("a full response");
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "a chunked answer: {head}"
    );
    (code, body.to_owned())
}

/// The value of the series `series` (name and labels, as exposed) in a metrics
/// exposition; 0 when it is absent.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// Everything (four adapters, materializer, resolver) on the suite's broker and Redis.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(test_settings(), Role::Dev).await
}

impl TestApp {
    /// A channel calling as `requester` with its certificate of the app's directory.
    pub async fn channel_as(&self, requester: &str) -> Channel {
        let ca = self
            .settings
            .tls_client_ca
            .as_deref()
            .expect("a secured app");
        let certs = Path::new(ca).parent().expect("the certificates directory");
        tls_channel(&self.addr.to_string(), certs, requester).await
    }

    pub fn social(&self) -> SocialSecurityAdapterClient<Channel> {
        SocialSecurityAdapterClient::new(self.channel.clone())
    }
    pub fn police(&self) -> PublicSecurityAdapterClient<Channel> {
        PublicSecurityAdapterClient::new(self.channel.clone())
    }
    pub fn housing(&self) -> HousingAdapterClient<Channel> {
        HousingAdapterClient::new(self.channel.clone())
    }
    pub fn fund(&self) -> ProvidentFundAdapterClient<Channel> {
        ProvidentFundAdapterClient::new(self.channel.clone())
    }
    /// A resolver client calling as the housing bureau's transfer window.
    pub fn resolver(&self) -> Resolver {
        self.resolver_as("housing/transfer-window", None)
    }

    /// A resolver client calling as `requester`, for `citizen` if given.
    /// A resolver client calling as the record system of the agency whose record `key`
    /// (`agency/type/id`) is: raw records are their agency's own.
    pub fn records_reader(&self, key: &str) -> Resolver {
        self.resolver_as(&owner_of(key), None)
    }

    pub fn resolver_as(&self, requester: &str, citizen: Option<&str>) -> Resolver {
        resolver_as(self.channel.clone(), requester, citizen)
    }

    /// Shuts the app down and checks it stopped cleanly.
    pub async fn stop(self) {
        self.stop.cancel();
        self.stopped().await.expect("app stops without error");
    }

    /// Asks the app to shut down (SIGTERM), without waiting.
    pub fn begin_stop(&self) {
        self.stop.cancel();
    }

    /// Waits until the app stopped (on its own or after `begin_stop`), with its result.
    pub async fn stopped(self) -> Result<(), govlink::app::AppError> {
        tokio::time::timeout(Duration::from_secs(60), self.handle)
            .await
            .expect("the app stops within 60s")
            .expect("app task joins")
    }
}

/// A valid, fictional resident ID number from its first 17 digits.
pub fn person(first17: &str) -> String {
    format!("{first17}{}", check_character(first17))
}

/// Three people: a man born 1980, a woman born 1990, a man born 1975.
pub fn alice() -> String {
    person("11010519800312001")
}
pub fn bea() -> String {
    person("31010419900521002")
}
pub fn chen() -> String {
    person("44030519750101003")
}

/// A real-estate unit number in Beijing's Chaoyang.
pub const UNIT: &str = "110105001002GB00017F00030201";

pub fn meta(record_id: &str, version: u64) -> Option<PublishMeta> {
    Some(PublishMeta {
        record_id: record_id.into(),
        version,
        source_event_id: format!("test-{record_id}-{version}"),
        occurred_at: Some(std::time::SystemTime::now().into()),
    })
}

pub fn date(year: i32, month: i32, day: i32) -> Option<Date> {
    Some(Date { year, month, day })
}

pub fn identity(person_id: &str) -> proto::Identity {
    proto::Identity {
        person_id: person_id.into(),
        name: "Test Person".into(),
        sex: proto::Sex::Male as i32,
        birth_date: date(1980, 3, 12),
    }
}

pub fn household(person_id: &str, status: proto::HouseholdStatus) -> proto::HouseholdRegistration {
    proto::HouseholdRegistration {
        person_id: person_id.into(),
        household_number: "H-1".into(),
        region_code: "110105".into(),
        address: "Room 201, Building 3".into(),
        status: status as i32,
        property_unit_number: UNIT.into(),
        registered_on: date(2008, 6, 1),
        destination_region_code: if status == proto::HouseholdStatus::MovedOut {
            "310104".into()
        } else {
            String::new()
        },
        destination_address: String::new(),
    }
}

pub fn title(owners: &[(&str, u32)]) -> proto::PropertyTitle {
    proto::PropertyTitle {
        unit_number: UNIT.into(),
        certificate_number: "JING-1".into(),
        address: "Room 201, Building 3".into(),
        owners: owners
            .iter()
            .map(|(id, share)| proto::Owner {
                person_id: (*id).into(),
                share_basis_points: *share,
            })
            .collect(),
        floor_area_dm2: 8_932,
        encumbrances: vec![],
        registered_on: date(2008, 5, 20),
    }
}

/// Publishes `seller`'s title to [`UNIT`] (record `T-1`, version 1) and a filed sale
/// contract to `buyer` (record `C-1`, version 1); the acks, title first.
pub async fn publish_title_and_filed_contract(
    app: &TestApp,
    seller: &str,
    buyer: &str,
) -> Vec<proto::PublishAck> {
    let title = app
        .housing()
        .publish_property_title(proto::PublishPropertyTitleRequest {
            meta: meta("T-1", 1),
            record: Some(title(&[(seller, 10_000)])),
        })
        .await
        .unwrap()
        .into_inner();
    let mut filed = contract(&[seller], &[buyer]);
    filed.status = proto::SaleContractStatus::Filed as i32;
    let contract = app
        .housing()
        .publish_sale_contract(proto::PublishSaleContractRequest {
            meta: meta("C-1", 1),
            record: Some(filed),
        })
        .await
        .unwrap()
        .into_inner();
    vec![title, contract]
}

pub fn contract(sellers: &[&str], buyers: &[&str]) -> proto::SaleContract {
    proto::SaleContract {
        contract_number: "WQ-1".into(),
        unit_number: UNIT.into(),
        seller_ids: sellers.iter().map(|s| (*s).to_owned()).collect(),
        buyer_ids: buyers.iter().map(|s| (*s).to_owned()).collect(),
        price_fen: 520_000_000,
        status: proto::SaleContractStatus::Signed as i32,
        signed_on: date(2026, 11, 20),
    }
}

pub fn enrollment(person_id: &str) -> proto::Enrollment {
    proto::Enrollment {
        person_id: person_id.into(),
        insurance_type: proto::InsuranceType::Pension as i32,
        region_code: "110105".into(),
        employer_credit_code: "91350100M000100Y43".into(),
        status: proto::EnrollmentStatus::Active as i32,
        start_date: date(2015, 7, 1),
        end_date: None,
    }
}

pub fn contribution(person_id: &str) -> proto::ContributionPeriod {
    proto::ContributionPeriod {
        person_id: person_id.into(),
        insurance_type: proto::InsuranceType::Pension as i32,
        region_code: "110105".into(),
        employer_credit_code: String::new(),
        period: Some(proto::YearMonth {
            year: 2026,
            month: 10,
        }),
        base_fen: 1_000_000,
        personal_fen: 80_000,
        employer_fen: 160_000,
    }
}

pub fn certificate(person_id: &str) -> proto::TransferOutCertificate {
    proto::TransferOutCertificate {
        person_id: person_id.into(),
        insurance_type: proto::InsuranceType::Pension as i32,
        certificate_number: "ZY-1".into(),
        from_region_code: "110105".into(),
        to_region_code: "310104".into(),
        issued_on: date(2026, 11, 1),
        contribution_months: 120,
        personal_account_balance_fen: 9_600_000,
    }
}

pub fn account(person_id: &str) -> proto::ProvidentFundAccount {
    proto::ProvidentFundAccount {
        person_id: person_id.into(),
        account_number: "GJJ-A-1".into(),
        region_code: "110105".into(),
        employer_credit_code: "91350100M000100Y43".into(),
        status: proto::AccountStatus::Active as i32,
        balance_fen: 12_300_000,
        monthly_deposit_fen: 240_000,
        opened_on: date(2010, 1, 4),
        last_deposit_month: None,
        consecutive_deposit_months: 0,
    }
}

pub fn loan(
    borrower: &str,
    status: proto::LoanStatus,
    outstanding: i64,
) -> proto::ProvidentFundLoan {
    proto::ProvidentFundLoan {
        borrower_id: borrower.into(),
        loan_contract_number: "GJJ-L-1".into(),
        unit_number: UNIT.into(),
        principal_fen: 60_000_000,
        outstanding_principal_fen: outstanding,
        status: status as i32,
        issued_on: date(2008, 6, 1),
    }
}

/// The field violations of an `INVALID_ARGUMENT` status, as (field, description).
pub fn violations(status: &Status) -> Vec<(String, String)> {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    status
        .get_details_bad_request()
        .expect("INVALID_ARGUMENT carries BadRequest details")
        .field_violations
        .into_iter()
        .map(|v| (v.field, v.description))
        .collect()
}

/// Reads up to `count` messages of one topic partition from `offset`, with a plain
/// consumer (no govlink code involved), waiting at most `wait` in all.
pub async fn read_partition(
    topic: &str,
    partition: i32,
    offset: i64,
    count: usize,
    wait: Duration,
) -> Vec<OwnedMessage> {
    let consumer = reading(&[(topic, partition, Offset::Offset(offset))]);
    let mut messages = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    while messages.len() < count {
        match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Ok(Ok(m)) => messages.push(m.detach()),
            Ok(Err(e)) => panic!("consume error: {e}"),
            Err(_) => break,
        }
    }
    messages
}

/// The message at an acked position, read with a plain consumer from the start of its
/// partition: Tansu 0.6.0 cannot start a fetch in the middle of a producer batch.
pub async fn read_at(at: &Position) -> OwnedMessage {
    let upto = usize::try_from(at.offset).unwrap() + 1;
    read_partition(&at.topic, at.partition, 0, upto, Duration::from_secs(20))
        .await
        .into_iter()
        .find(|m| m.offset() == at.offset)
        .unwrap_or_else(|| panic!("no message at {at:?}"))
}

/// The highest offset per (topic, partition), as positions a lookup waits for.
pub fn positions_of(highest: &std::collections::BTreeMap<(String, i32), i64>) -> Vec<Position> {
    highest
        .iter()
        .map(|((topic, partition), offset)| Position {
            topic: topic.clone(),
            partition: *partition,
            offset: *offset,
        })
        .collect()
}

/// The position an ack carries.
pub fn position(ack: &proto::PublishAck) -> Position {
    ack.position.clone().expect("an ack carries a position")
}

/// A plain connection to the suite's Redis (one server, or the cluster when
/// `GOVLINK_TEST_REDIS` names one).
pub async fn redis() -> govlink::redis_link::RedisConn {
    govlink::redis_link::RedisLink::new(redis_url())
        .connect()
        .await
        .expect("redis")
}

/// Publishes version `version` of household registration `id`: `person`, `status`.
pub async fn publish_household(
    app: &TestApp,
    id: &str,
    version: u64,
    person: &str,
    status: proto::HouseholdStatus,
) -> proto::PublishAck {
    app.police()
        .publish_household_registration(proto::PublishHouseholdRegistrationRequest {
            meta: meta(id, version),
            record: Some(household(person, status)),
        })
        .await
        .expect("the publish is acknowledged")
        .into_inner()
}

/// Publishes version `version` of household registration `id` (Alice, registered) and
/// returns where it landed.
pub async fn publish_household_at(app: &TestApp, id: &str, version: u64) -> Position {
    let registered = proto::HouseholdStatus::Registered;
    position(&publish_household(app, id, version, &alice(), registered).await)
}

/// A `govlink SUBCOMMAND` child process configured like `settings` (broker, Redis,
/// prefixes, group) through `GOVLINK_*` variables. Servers run with mutual TLS: the
/// certificates of `settings`, or else [`test_certs`] (callers connect with
/// [`tls_channel`]); the binary takes no header identities.
pub fn govlink_command(settings: &Settings, subcommand: &str) -> std::process::Command {
    let secured = match settings.tls_cert {
        Some(_) => settings.clone(),
        None => settings.clone().with_certs_dir(test_certs()),
    };
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_govlink"));
    for (name, value) in [
        ("GOVLINK_TLS_CERT", &secured.tls_cert),
        ("GOVLINK_TLS_KEY", &secured.tls_key),
        ("GOVLINK_TLS_CLIENT_CA", &secured.tls_client_ca),
        ("GOVLINK_TLS_CRL", &secured.tls_crl),
    ] {
        command.env(name, value.as_deref().expect("a secured setting"));
    }
    command
        .arg(subcommand)
        .env("GOVLINK_KAFKA", settings.kafka.as_deref().unwrap())
        .env("GOVLINK_REDIS", settings.redis.as_deref().unwrap())
        .env("GOVLINK_ADMIN_ADDR", &settings.admin_addr)
        .env("GOVLINK_TOPIC_PREFIX", &settings.topic_prefix)
        .env("GOVLINK_REDIS_PREFIX", &settings.redis_prefix)
        .env("GOVLINK_CONSUMER_GROUP", &settings.consumer_group)
        .env("GOVLINK_PARTITIONS", settings.partitions.to_string())
        .env(
            "GOVLINK_MATERIALIZER_BATCH",
            settings.materializer_batch.to_string(),
        );
    if let Some(policy) = &settings.policy {
        command.env("GOVLINK_POLICY", policy);
    }
    command
}

/// The generation of the store under `prefix`, read from Redis directly.
pub async fn generation(prefix: &str) -> String {
    use redis::AsyncCommands;
    let generation: Option<String> = redis()
        .await
        .hget(format!("{prefix}meta"), "gen")
        .await
        .unwrap();
    generation.expect("the store has a generation")
}

/// A plain consumer (a group of its own, nothing committed) reading every partition of
/// `topic` from the beginning.
pub fn from_beginning(topic: &str, partitions: i32) -> StreamConsumer {
    let starts: Vec<_> = (0..partitions)
        .map(|p| (topic, p, Offset::Beginning))
        .collect();
    reading(&starts)
}

/// A plain consumer (a group of its own, nothing committed) assigned `starts`: topic,
/// partition and where to start.
fn reading(starts: &[(&str, i32, Offset)]) -> StreamConsumer {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka())
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    for (topic, partition, offset) in starts {
        assignment
            .add_partition_offset(topic, *partition, *offset)
            .unwrap();
    }
    consumer.assign(&assignment).expect("assign");
    consumer
}

/// Sends `payload` under `key` straight onto `topic` (on `partition`, if given) with a
/// plain producer, as something other than govlink could: bytes no adapter checked.
pub async fn send_raw(topic: &str, key: &str, payload: &[u8], partition: Option<i32>) {
    let producer: rdkafka::producer::FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka())
        .create()
        .expect("producer");
    let mut record = rdkafka::producer::FutureRecord::to(topic)
        .key(key)
        .payload(payload);
    record.partition = partition;
    producer
        .send(record, Duration::from_secs(10))
        .await
        .expect("the broker takes the message");
}

/// The message key of a plain Kafka message as text.
pub fn key_of(m: &OwnedMessage) -> String {
    String::from_utf8(m.key().unwrap_or_default().to_vec()).unwrap()
}

/// How many messages a topic holds, asked of the broker (partition watermarks). Use it
/// for "nothing was published" only: Tansu 0.6.0 under-reports the high watermark when a
/// producer batch carries several records (one stored record still makes it at least 1).
pub async fn message_count(topic: &str, partitions: i32) -> usize {
    let mut total = 0;
    for p in 0..partitions {
        total += message_count_in(topic, p).await;
    }
    total
}

/// How many messages one partition holds.
pub async fn message_count_in(topic: &str, partition: i32) -> usize {
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer: rdkafka::consumer::BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", kafka())
            .create()
            .expect("consumer");
        let (low, high) = consumer
            .fetch_watermarks(&topic, partition, Duration::from_secs(10))
            .expect("watermarks");
        usize::try_from(high - low).expect("watermarks are ordered")
    })
    .await
    .unwrap()
}

/// Version `version` of record `record_id` as an agency publishes it.
pub fn record_event(
    record_id: &str,
    version: u64,
    payload: proto::record_event::Payload,
) -> proto::RecordEvent {
    let record_type = govlink::records::RecordType::of_payload(&payload);
    proto::RecordEvent {
        event_id: format!("ev-{record_id}-{version}"),
        agency: record_type.agency() as i32,
        record_type: record_type.as_str().into(),
        record_id: record_id.into(),
        version,
        op: proto::Op::Upsert as i32,
        payload: Some(payload),
        ..proto::RecordEvent::default()
    }
}

/// The deletion of record `record_id` at `version`.
pub fn deletion_event(
    record_type: govlink::records::RecordType,
    record_id: &str,
    version: u64,
) -> proto::RecordEvent {
    proto::RecordEvent {
        event_id: format!("ev-{record_id}-{version}"),
        agency: record_type.agency() as i32,
        record_type: record_type.as_str().into(),
        record_id: record_id.into(),
        version,
        op: proto::Op::Delete as i32,
        payload: None,
        ..proto::RecordEvent::default()
    }
}

/// The store write the materializer makes of `event`: its key, its subjects derived from
/// the payload, and its encoded form (leaked, like a message payload it borrows; a test
/// process writes a few thousand).
pub fn store_write(event: &proto::RecordEvent) -> govlink::resolver::store::RecordWrite<'static> {
    use govlink::records::{RecordKey, RecordType, subjects_of};
    use govlink::resolver::store::{Change, RecordWrite};
    use prost::Message as _;
    let (record_type, change) = match &event.payload {
        Some(payload) => (
            RecordType::of_payload(payload),
            Change::Upsert {
                subjects: subjects_of(payload),
                event: govlink::records::stored::compact(&event.encode_to_vec())
                    .expect("an encoded event")
                    .into(),
            },
        ),
        None => (
            RecordType::parse(event.agency(), &event.record_type).expect("a known record type"),
            Change::Delete,
        ),
    };
    RecordWrite {
        key: RecordKey::new(record_type, &event.record_id),
        version: event.version,
        change,
    }
}

/// A request opening the sale of flat `unit` (contract WQ-1) from `sellers` to `buyers`.
pub fn sale_between(
    request_id: &str,
    unit: &str,
    sellers: Vec<String>,
    buyers: Vec<String>,
) -> proto::OpenCaseRequest {
    proto::OpenCaseRequest {
        request_id: request_id.into(),
        purpose: "property-transfer".into(),
        params: Some(proto::CaseParams {
            kind: Some(proto::case_params::Kind::PropertyTransfer(
                proto::PropertyTransferParams {
                    unit_number: unit.into(),
                    contract_number: "WQ-1".into(),
                    seller_ids: sellers,
                    buyer_ids: buyers,
                },
            )),
        }),
        min_positions: Vec::new(),
    }
}

/// Opening a household move of `person` to Shanghai (Xuhui), as request `request_id`.
pub fn household_move(request_id: &str, person: &str) -> proto::OpenCaseRequest {
    proto::OpenCaseRequest {
        request_id: request_id.into(),
        purpose: "household-move".into(),
        params: Some(proto::CaseParams {
            kind: Some(proto::case_params::Kind::HouseholdMove(
                proto::HouseholdMoveParams {
                    person_id: person.into(),
                    to_region_code: "310104".into(),
                },
            )),
        }),
        min_positions: Vec::new(),
    }
}

/// Waits until the resolver materialized the record of `ack`.
pub async fn wait_materialized(app: &TestApp, ack: &proto::PublishAck) {
    app.records_reader(&ack.record_key)
        .get_record(proto::GetRecordRequest {
            record_key: ack.record_key.clone(),
            min_positions: vec![position(ack)],
        })
        .await
        .unwrap();
}

pub fn tasks_as(
    app: &TestApp,
    requester: &str,
) -> proto::tasks_client::TasksClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, AsRequester>,
> {
    let requester = Requester::parse(requester).unwrap();
    proto::tasks_client::TasksClient::with_interceptor(
        app.channel.clone(),
        AsRequester::new(&requester, None),
    )
}

/// The first task a new stream sends within two seconds, if any (the stream is dropped:
/// a disconnect).
pub async fn next_task(
    client: &mut proto::tasks_client::TasksClient<
        tonic::service::interceptor::InterceptedService<tonic::transport::Channel, AsRequester>,
    >,
) -> Option<proto::Task> {
    let mut stream = client
        .stream(proto::StreamTasksRequest {})
        .await
        .unwrap()
        .into_inner();
    match tokio::time::timeout(Duration::from_secs(2), stream.message()).await {
        Ok(message) => message.unwrap(),
        Err(_) => None,
    }
}

pub fn cases_as(
    app: &TestApp,
    requester: &str,
) -> proto::cases_client::CasesClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, AsRequester>,
> {
    cases_on(app.channel.clone(), requester)
}

/// A `Cases` client on `channel`, calling as `requester` (in a header, as `dev` takes it).
pub fn cases_on(
    channel: Channel,
    requester: &str,
) -> proto::cases_client::CasesClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, AsRequester>,
> {
    let requester = Requester::parse(requester).unwrap();
    proto::cases_client::CasesClient::with_interceptor(channel, AsRequester::new(&requester, None))
}

/// Every message of `topic`, all partitions, decoded: read for two seconds each (end
/// offsets are no guide on Tansu, which under-reports them after a multi-record batch).
pub async fn read_all<M: prost::Message + Default>(topic: &str, partitions: i32) -> Vec<M> {
    let mut all = Vec::new();
    for p in 0..partitions {
        for m in read_partition(topic, p, 0, usize::MAX, Duration::from_secs(2)).await {
            all.push(M::decode(rdkafka::Message::payload(&m).unwrap()).unwrap());
        }
    }
    all
}

/// The first access of the audit trail of `app` that `wanted` picks, waiting for it.
pub async fn audited(
    app: &TestApp,
    wanted: impl Fn(&proto::DataAccess) -> bool,
) -> proto::DataAccess {
    let consumer = from_beginning(&app.topics.audit(), app.settings.partitions);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let message = tokio::time::timeout_at(deadline, consumer.recv())
            .await
            .expect("the access is in the audit trail within 30 s")
            .unwrap();
        let entry = <proto::AuditEntry as prost::Message>::decode(
            rdkafka::Message::payload(&message).unwrap_or_default(),
        )
        .unwrap();
        let body = <proto::AuditBody as prost::Message>::decode(entry.body.as_slice()).unwrap();
        if let Some(proto::audit_body::Kind::Access(access)) = body.kind
            && wanted(&access)
        {
            return access;
        }
    }
}

/// Calls per command since the server started, as `INFO commandstats` reports them.
pub async fn command_calls(
    conn: &mut redis::aio::MultiplexedConnection,
) -> std::collections::BTreeMap<String, u64> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .filter_map(|line| {
            let (name, stats) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = stats.split(',').find_map(|s| s.strip_prefix("calls="))?;
            Some((name.to_owned(), calls.parse().unwrap()))
        })
        .collect()
}

/// How govlink creates the topics `names` of `topics`, with `partitions` each and one
/// replica (the test broker has one).
pub fn specs_of(
    topics: &govlink::kafka::Topics,
    names: &[String],
    partitions: i32,
) -> Vec<govlink::kafka::TopicSpec> {
    let sizing = govlink::kafka::Sizing {
        partitions,
        replication: 1,
        record_retention_ms: -1,
    };
    topics
        .specs(&sizing)
        .into_iter()
        .filter(|spec| names.contains(&spec.name))
        .collect()
}
