//! Scaling out: partitions added to a record topic while agencies publish, and several
//! resolver replicas in one consumer group over one Redis. The Redis is the suite's
//! (`test_settings`, from `helpers::redis_url`); every answer is read through the
//! resolvers' gRPC, none from Redis directly.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use futures::StreamExt;
use govlink::app::Role;
use govlink::proto::{self, Agency, GetRecordRequest, Position};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use tokio::time::Instant;
use tonic::Code;

use crate::helpers::*;

/// Partitions of the record topics when the test starts (`test_settings`).
const START_PARTITIONS: i32 = 3;
/// Partitions after growing.
const GROWN_PARTITIONS: i32 = 6;
/// Records published, each in many versions.
const RECORDS: usize = 48;
/// Publishes in flight at once.
const CONCURRENCY: usize = 8;
/// How long publishing may go on before enough records moved to the new partitions, and
/// how long the resolvers may take to converge: generous, never a measure of speed.
const PATIENCE: Duration = Duration::from_secs(120);

fn admin() -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", kafka())
        .create()
        .expect("an admin client")
}

/// Asks the broker to grow `topic` to `partitions`; `Err` with its answer.
async fn add_partitions(topic: &str, partitions: i32) -> Result<(), RDKafkaErrorCode> {
    let count = usize::try_from(partitions).unwrap();
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(30)));
    let answers = admin()
        .create_partitions(&[NewPartitions::new(topic, count)], &options)
        .await;
    match answers {
        Ok(answers) => match answers.into_iter().next() {
            Some(Err((_, code))) => Err(code),
            Some(Ok(_)) | None => Ok(()),
        },
        Err(KafkaError::AdminOp(code)) => Err(code),
        Err(e) => panic!("CreatePartitions for {topic} could not be sent: {e}"),
    }
}

/// Whether the broker adds partitions to a topic, tried on a topic of this test's own:
/// `Err` with the answer when it does not. A broker without the CreatePartitions API does
/// not list it in its ApiVersions answer, and librdkafka then refuses the request itself
/// with `UnsupportedFeature` (Tansu 0.6.0 closes the connection on one sent anyway).
async fn partitions_can_grow() -> Result<(), RDKafkaErrorCode> {
    let topic = unique("scale-out-probe");
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let created = admin()
        .create_topics(
            &[NewTopic::new(&topic, 1, TopicReplication::Fixed(1))],
            &options,
        )
        .await
        .expect("the broker answers CreateTopics");
    assert!(matches!(created[..], [Ok(_)]), "{created:?}");
    // Some brokers create topics asynchronously: a fresh topic may not be known yet.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match add_partitions(&topic, 2).await {
            Err(RDKafkaErrorCode::UnknownTopicOrPartition) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(RDKafkaErrorCode::UnsupportedFeature) => {
                return Err(RDKafkaErrorCode::UnsupportedFeature);
            }
            Err(code) => panic!("the broker refused to add a partition to {topic}: {code}"),
            Ok(()) => return Ok(()),
        }
    }
}

/// The highest version acknowledged per record, where each record's acks landed, and the
/// highest acknowledged offset per partition (what lookups wait for).
#[derive(Default)]
struct Acked {
    highest: BTreeMap<String, u64>,
    partitions_of: HashMap<String, BTreeSet<i32>>,
    positions: BTreeMap<(String, i32), i64>,
}

impl Acked {
    fn add(&mut self, id: &str, version: u64, at: &Position) {
        let highest = self.highest.entry(id.to_owned()).or_default();
        *highest = (*highest).max(version);
        self.partitions_of
            .entry(id.to_owned())
            .or_default()
            .insert(at.partition);
        let offset = self
            .positions
            .entry((at.topic.clone(), at.partition))
            .or_insert(-1);
        *offset = (*offset).max(at.offset);
    }

    fn positions(&self) -> Vec<Position> {
        positions_of(&self.positions)
    }

    /// Records with acks both on a partition the topic had at the start and on one added
    /// since: moved by the new partition count, mid-stream.
    fn moved(&self) -> usize {
        self.partitions_of
            .values()
            .filter(|ps| {
                ps.iter().any(|p| *p < START_PARTITIONS)
                    && ps.iter().any(|p| *p >= START_PARTITIONS)
            })
            .count()
    }
}

/// Publishes round `round` through the adapter at `adapter`: version `round` of every
/// record and, out of order behind it, version `round - 1` again of every third; all
/// acknowledged.
async fn publish_round(adapter: &TestApp, round: u64, acked: &mut Acked) {
    let mut ops: Vec<(String, u64)> = (0..RECORDS).map(|r| (format!("grow-{r}"), round)).collect();
    if round > 1 {
        ops.extend(
            (0..RECORDS)
                .step_by(3)
                .map(|r| (format!("grow-{r}"), round - 1)),
        );
    }
    let results: Vec<_> = futures::stream::iter(ops)
        .map(|(id, version)| {
            let mut police = adapter.police();
            async move {
                let status = if version % 2 == 0 {
                    proto::HouseholdStatus::MovedOut
                } else {
                    proto::HouseholdStatus::Registered
                };
                let ack = police
                    .publish_household_registration(proto::PublishHouseholdRegistrationRequest {
                        meta: meta(&id, version),
                        record: Some(household(&alice(), status)),
                    })
                    .await;
                (id, version, ack)
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    for (id, version, ack) in results {
        let ack = ack.unwrap_or_else(|s| panic!("publish of {id} v{version} failed: {s:?}"));
        acked.add(&id, version, &position(&ack.into_inner()));
    }
}

/// The version of record `id` the resolver at `resolver` answers after `after`, asking
/// again while it is not ready or the positions are not materialized yet (a rebalance
/// onto new partitions), until `give_up`.
async fn version_after(resolver: &TestApp, id: &str, after: &[Position], give_up: Instant) -> u64 {
    loop {
        let mut request = tonic::Request::new(GetRecordRequest {
            record_key: format!("public-security/household_registration/{id}"),
            min_positions: after.to_vec(),
        });
        request.set_timeout(Duration::from_secs(10));
        match resolver
            .resolver_as("public-security/records", None)
            .get_record(request)
            .await
        {
            Ok(answer) => return answer.into_inner().record.expect("a record").version,
            Err(s)
                if matches!(s.code(), Code::Unavailable | Code::DeadlineExceeded)
                    && Instant::now() < give_up =>
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(s) => panic!("lookup of {id} after {after:?}: {s:?}"),
        }
    }
}

#[tokio::test]
async fn records_converge_to_their_highest_version_when_partitions_are_added_while_publishing() {
    if let Err(answer) = partitions_can_grow().await {
        println!(
            "SKIPPED: this broker does not add partitions to a topic. CreatePartitions: {answer} \
             (librdkafka refuses to send it: the broker's ApiVersions answer does not list \
             it). Run against Apache Kafka (scripts/test.sh --docker)."
        );
        return;
    }
    let settings = test_settings();
    assert_eq!(settings.partitions, START_PARTITIONS);
    let adapter = spawn_app_with(settings.clone(), Role::Adapter(Agency::PublicSecurity)).await;
    let resolver = spawn_app_with(settings.clone(), Role::Resolver).await;
    let topic = adapter.topics.records(Agency::PublicSecurity);
    let mut acked = Acked::default();
    for round in 1..=3 {
        publish_round(&adapter, round, &mut acked).await;
    }

    // The topic grows while round 4 is published.
    let mut round = 4;
    let (_, grown) = tokio::join!(
        publish_round(&adapter, round, &mut acked),
        add_partitions(&topic, GROWN_PARTITIONS)
    );
    grown.unwrap_or_else(|code| panic!("adding partitions to {topic}: {code}"));

    // Publishing goes on until records moved to the new partitions: the adapter sees
    // the new count once it refreshes the topic's metadata.
    let give_up = Instant::now() + PATIENCE;
    while acked.moved() < RECORDS / 4 || round < 8 {
        assert!(
            Instant::now() < give_up,
            "after {round} rounds, only {} of {RECORDS} records were published to a new \
             partition (acks per partition: {:?})",
            acked.moved(),
            acked.positions
        );
        round += 1;
        publish_round(&adapter, round, &mut acked).await;
    }
    println!(
        "{} rounds, {} records moved to new partitions, acks per partition {:?}",
        round,
        acked.moved(),
        acked.positions
    );

    // Every record at its highest acknowledged version, read after every acknowledged
    // position, the new partitions' included: the resolver reads them too.
    let after = acked.positions();
    assert!(after.iter().any(|p| p.partition >= START_PARTITIONS));
    let give_up = Instant::now() + PATIENCE;
    let mut wrong = Vec::new();
    for (id, highest) in &acked.highest {
        let found = version_after(&resolver, id, &after, give_up).await;
        if found != *highest {
            wrong.push(format!("{id}: v{found}, acknowledged v{highest}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "records not at their highest version: {wrong:?}"
    );
    resolver.stop().await;
    adapter.stop().await;
}

/// Resolver replicas in the second test.
const REPLICAS: usize = 3;
const WINDOW: &str = "housing/transfer-window";
const SOCIAL_WINDOW: &str = "social-security/transfer-window";
const PORTAL: &str = "public-security/citizen-portal";

/// The four agencies' adapters, each an app of its own (no resolver among them).
struct Adapters {
    police: TestApp,
    housing: TestApp,
    social: TestApp,
    fund: TestApp,
}

impl Adapters {
    async fn spawn(settings: &govlink::config::Settings) -> Adapters {
        let adapter = |agency| spawn_app_with(settings.clone(), Role::Adapter(agency));
        Adapters {
            police: adapter(Agency::PublicSecurity).await,
            housing: adapter(Agency::Housing).await,
            social: adapter(Agency::SocialSecurity).await,
            fund: adapter(Agency::ProvidentFund).await,
        }
    }

    async fn stop(self) {
        for app in [self.police, self.housing, self.social, self.fund] {
            app.stop().await;
        }
    }
}

/// Alice's records in every agency, published one at a time: her identity, her household
/// registered at the flat, her title to it, its sale to Bea, her pension enrollment and a
/// contribution, her provident-fund account and a loan on the flat. The positions.
async fn alice_everywhere(a: &Adapters) -> Vec<Position> {
    let (seller, buyer) = (alice(), bea());
    let acks = [
        a.police
            .police()
            .publish_identity(proto::PublishIdentityRequest {
                meta: meta("I-1", 1),
                record: Some(identity(&seller)),
            })
            .await,
        a.police
            .police()
            .publish_household_registration(proto::PublishHouseholdRegistrationRequest {
                meta: meta("H-1", 1),
                record: Some(household(&seller, proto::HouseholdStatus::Registered)),
            })
            .await,
        a.housing
            .housing()
            .publish_property_title(proto::PublishPropertyTitleRequest {
                meta: meta("T-1", 1),
                record: Some(title(&[(&seller, 10_000)])),
            })
            .await,
        a.housing
            .housing()
            .publish_sale_contract(proto::PublishSaleContractRequest {
                meta: meta("C-1", 1),
                record: Some(contract(&[&seller], &[&buyer])),
            })
            .await,
        a.social
            .social()
            .publish_enrollment(proto::PublishEnrollmentRequest {
                meta: meta("E-1", 1),
                record: Some(enrollment(&seller)),
            })
            .await,
        a.social
            .social()
            .publish_contribution_period(proto::PublishContributionPeriodRequest {
                meta: meta("P-1", 1),
                record: Some(contribution(&seller)),
            })
            .await,
        a.fund
            .fund()
            .publish_account(proto::PublishAccountRequest {
                meta: meta("A-1", 1),
                record: Some(account(&seller)),
            })
            .await,
        a.fund
            .fund()
            .publish_loan(proto::PublishLoanRequest {
                meta: meta("L-1", 1),
                record: Some(loan(&seller, proto::LoanStatus::Repaying, 30_000_000)),
            })
            .await,
    ];
    acks.into_iter()
        .map(|ack| position(&ack.expect("the publish is acknowledged").into_inner()))
        .collect()
}

/// Every answer one replica gives about Alice's flat sale.
#[derive(Debug, PartialEq)]
struct Answers {
    /// The transfer window's profile of Alice.
    window_profile: proto::GetPersonProfileResponse,
    /// Alice's profile of herself, through the citizen portal.
    own_profile: proto::GetPersonProfileResponse,
    flat: proto::CheckPropertyTransferResponse,
    pension: proto::CheckSocialSecurityTransferResponse,
}

fn answered<T>(answer: Result<tonic::Response<T>, tonic::Status>, replica: &TestApp) -> T {
    answer
        .unwrap_or_else(|s| panic!("a lookup at the replica at {} failed: {s:?}", replica.addr))
        .into_inner()
}

/// The transfer window's property-transfer check of Alice's sale of the flat to Bea at
/// `replica`, after `after`.
async fn check_flat(replica: &TestApp, after: &[Position]) -> proto::CheckPropertyTransferResponse {
    crate::lookups::check_flat(replica, after)
        .await
        .unwrap_or_else(|s| panic!("a lookup at the replica at {} failed: {s:?}", replica.addr))
}

/// What `replica` answers about Alice after `after`.
async fn answers(replica: &TestApp, after: &[Position]) -> Answers {
    let person = alice();
    let profile = |requester: &str, citizen: Option<&str>, purpose: &str| {
        let mut client = replica.resolver_as(requester, citizen);
        let request = proto::GetPersonProfileRequest {
            person_id: person.clone(),
            purpose: purpose.into(),
            case_id: String::new(),
            min_positions: after.to_vec(),
        };
        async move { answered(client.get_person_profile(request).await, replica) }
    };
    let pension = replica
        .resolver_as(SOCIAL_WINDOW, None)
        .check_social_security_transfer(proto::CheckSocialSecurityTransferRequest {
            person_id: person.clone(),
            from_region: "110105".into(),
            to_region: "310104".into(),
            purpose: "social-security-transfer".into(),
            case_id: String::new(),
            min_positions: after.to_vec(),
        })
        .await;
    Answers {
        window_profile: profile(WINDOW, None, "property-transfer").await,
        own_profile: profile(PORTAL, Some(&person), "self-view").await,
        flat: check_flat(replica, after).await,
        pension: answered(pension, replica),
    }
}

fn codes(blockers: &[proto::Blocker]) -> Vec<&str> {
    blockers.iter().map(|b| b.code.as_str()).collect()
}

/// The household registration H-1 at `replica` after `after`.
async fn household_after(replica: &TestApp, after: &Position) -> u64 {
    let answer = replica
        .resolver_as("public-security/records", None)
        .get_record(GetRecordRequest {
            record_key: "public-security/household_registration/H-1".into(),
            min_positions: vec![after.clone()],
        })
        .await;
    answered(answer, replica).record.expect("a record").version
}

#[tokio::test]
async fn resolver_replicas_in_one_group_answer_alike_and_read_your_writes_across_them() {
    let settings = test_settings();
    let adapters = Adapters::spawn(&settings).await;
    let mut replicas = Vec::new();
    for _ in 0..REPLICAS {
        replicas.push(spawn_app_with(settings.clone(), Role::Resolver).await);
    }

    // The same lookups through every replica, after the same publishes: the same answers.
    let after = alice_everywhere(&adapters).await;
    let first = answers(&replicas[0], &after).await;
    let blockers = codes(&first.flat.blockers);
    assert!(
        blockers.contains(&"SELLER_HOUSEHOLD_AT_UNIT")
            && blockers.contains(&"PROVIDENT_FUND_LOAN_UNSETTLED"),
        "{blockers:?}"
    );
    let identity = first
        .own_profile
        .identity
        .as_ref()
        .and_then(|s| s.identity.as_ref());
    assert_eq!(
        identity.map(|i| i.person_id.as_str()),
        Some(alice().as_str())
    );
    for replica in &replicas[1..] {
        assert_eq!(
            answers(replica, &after).await,
            first,
            "the replica at {} answers otherwise than the one at {}",
            replica.addr,
            replicas[0].addr
        );
    }

    // Read-your-writes across replicas: each new version of Alice's household, asked of
    // every replica at once with the position its publish returned. A partition has one
    // owner in the group at a time, so at least two of the three answers come from a
    // replica that did not materialize it itself and knows it only from the store.
    for version in 2..=7 {
        let status = if version % 2 == 0 {
            proto::HouseholdStatus::MovedOut
        } else {
            proto::HouseholdStatus::Registered
        };
        let ack = adapters
            .police
            .police()
            .publish_household_registration(proto::PublishHouseholdRegistrationRequest {
                meta: meta("H-1", version),
                record: Some(household(&alice(), status)),
            })
            .await
            .expect("the publish is acknowledged")
            .into_inner();
        let at = position(&ack);
        let seen = futures::future::join_all(replicas.iter().map(|replica| async {
            let record = household_after(replica, &at).await;
            let flat = check_flat(replica, std::slice::from_ref(&at)).await;
            (
                record,
                codes(&flat.blockers).contains(&"SELLER_HOUSEHOLD_AT_UNIT"),
            )
        }))
        .await;
        let registered = status == proto::HouseholdStatus::Registered;
        assert_eq!(
            seen,
            vec![(version, registered); REPLICAS],
            "household v{version} published at {at:?}: (version, seller still registered) \
             per replica"
        );
    }
    for replica in replicas {
        replica.stop().await;
    }
    adapters.stop().await;
}
