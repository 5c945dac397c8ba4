//! The system a bench measures: govlink in-process (every adapter and the resolver) on
//! the configured broker and store, under prefixes of its own, serving mutual TLS as a
//! deployment does (a throwaway development CA; each caller presents its certificate),
//! and the raw clients the baselines use on the same broker and store.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use crate::app::{App, AppError, Role};
use crate::config::Settings;
use crate::domain::resident_id::check_character;
use crate::identity::Requester;
use crate::kafka::{Brokers, Topics, client_config};
use crate::redis_link::{RedisConn, RedisLink};
use crate::resolver::store::Store;
use crate::tls::certs::CertsDir;
use crate::tls::client::ClientTls;

/// `agency/service` as a requester.
pub(super) fn requester(name: &str) -> anyhow::Result<Requester> {
    Requester::parse(name).map_err(|e| anyhow::anyhow!("{name}: {e}"))
}

/// The requester and purpose the lookup scenario calls with: every section, masked.
pub(super) const REQUESTER: &str = "housing/bench";
pub(super) const PURPOSE: &str = "bench";
const POLICY: &str = r#"
[[integration]]
agency = "social-security"
service = "records"

[[integration]]
agency = "public-security"
service = "records"

[[integration]]
agency = "housing"
service = "records"

[[integration]]
agency = "provident-fund"
service = "records"

[[grant]]
agency = "housing"
service = "bench"
purpose = "bench"
sections = ["identity", "household", "social-security", "provident-fund", "property"]
"#;

/// A running govlink and what the baselines need to reach the same broker and store.
pub(super) struct Env {
    pub(super) settings: Settings,
    pub(super) topics: Topics,
    /// Where the gRPC server listens.
    addr: std::net::SocketAddr,
    /// The callers' certificates.
    certs: ClientTls,
    pub(super) brokers: Brokers,
    pub(super) store: Store,
    policy_file: std::path::PathBuf,
    stop: CancellationToken,
    server: JoinHandle<Result<(), AppError>>,
}

impl Env {
    /// Starts govlink under fresh topic and key prefixes.
    pub(super) async fn start(settings: &Settings) -> anyhow::Result<Env> {
        let id = &uuid::Uuid::new_v4().simple().to_string()[..8];
        let policy_file = std::env::temp_dir().join(format!("govlink-bench-{id}.toml"));
        std::fs::write(&policy_file, POLICY)?;
        let mut settings = settings.clone();
        settings.grpc_addr = ([127, 0, 0, 1], 0).into();
        // A port of its own is not needed, and the default one may be taken.
        settings.admin_addr = String::new();
        settings.topic_prefix = format!("bench-{id}.");
        settings.redis_prefix = format!("govlink-bench:{id}:");
        settings.consumer_group = format!("govlink-bench-{id}");
        settings.policy = Some(policy_file.display().to_string());
        let certs_dir = std::env::temp_dir().join(format!("govlink-bench-certs-{id}"));
        let dir = CertsDir::new(&certs_dir);
        dir.init()?;
        dir.issue(&requester(REQUESTER)?, Duration::from_secs(86_400))?;
        let settings = settings.with_certs_dir(&certs_dir);
        let app = App::build(&settings, Role::Dev).await?;
        let brokers = app.kafka_brokers().clone();
        let store = app
            .store()
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("the bench app has no store"))?;
        let addr = app.grpc_addr();
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let server = tokio::spawn(app.run_until_stopped(async move { stopped.cancelled().await }));
        Ok(Env {
            topics: Topics::new(settings.topic_prefix.clone()),
            settings,
            addr,
            certs: ClientTls::new(&certs_dir),
            brokers,
            store,
            policy_file,
            stop,
            server,
        })
    }

    /// A connection to govlink calling as `requester` (`agency/service`) with its
    /// certificate: an agency's record system (`<agency>/records`) publishes, the bench's
    /// requester looks up.
    pub(super) async fn channel_as(&self, requester_name: &str) -> anyhow::Result<Channel> {
        self.certs
            .connect(&self.addr.to_string(), &requester(requester_name)?)
            .await
    }

    /// Where it runs, for the report's first line.
    pub(super) fn describe(&self) -> String {
        let kafka = match &self.settings.kafka {
            Some(k) => format!("kafka {k}"),
            None => "the embedded broker".to_owned(),
        };
        let store = match self.settings.redis_link() {
            Some(link) => format!("redis {link}"),
            None => "the in-memory store".to_owned(),
        };
        format!("{kafka} and {store}")
    }

    /// A raw producer configured as govlink's shared producer is (idempotent, acks=all,
    /// the same linger), for the publish baselines.
    pub(super) fn raw_producer(&self) -> anyhow::Result<rdkafka::producer::FutureProducer> {
        Ok(client_config(&self.brokers, "govlink-bench-raw")
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "2")
            .set("message.timeout.ms", "30000")
            .create()?)
    }

    /// Stops govlink (and deletes what the bench wrote under its Redis prefix).
    pub(super) async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(60), self.server).await???;
        let _ = std::fs::remove_file(&self.policy_file);
        let _ = std::fs::remove_dir_all(self.certs.dir());
        if let Some(link) = self.settings.redis_link() {
            delete_prefix(&link, &self.settings.redis_prefix).await?;
        }
        Ok(())
    }
}

/// The `i`-th of 23 million distinct valid resident ID numbers (then they repeat): a
/// thousand people born on each day of 1950 to 2019 (a calendar of 28-day months is enough
/// for distinct dates), men for odd `i`.
pub(super) fn person(i: u64) -> String {
    let born = birth_date(i);
    let first17 = format!(
        "110105{:04}{:02}{:02}{:03}",
        born.year,
        born.month,
        born.day,
        i % 1000
    );
    format!("{first17}{}", check_character(&first17))
}

/// The birth date in [`person`]`(i)`.
pub(super) fn birth_date(i: u64) -> crate::proto::Date {
    let day = i / 1000 % (70 * 12 * 28);
    crate::proto::Date {
        year: 1950 + (day / (12 * 28)) as i32,
        month: (day / 28 % 12) as i32 + 1,
        day: (day % 28) as i32 + 1,
    }
}

/// Publish metadata of version 1 of record `record_id`, occurring now.
pub(super) fn meta(record_id: &str) -> Option<crate::proto::PublishMeta> {
    Some(crate::proto::PublishMeta {
        record_id: record_id.to_owned(),
        version: 1,
        source_event_id: format!("bench-{record_id}"),
        occurred_at: Some(std::time::SystemTime::now().into()),
    })
}

/// A household registration of person `i`, at a flat in Beijing.
pub(super) fn household(i: u64) -> crate::proto::HouseholdRegistration {
    use crate::proto::{self, Date, HouseholdStatus};
    proto::HouseholdRegistration {
        person_id: person(i),
        household_number: format!("H-{i}"),
        region_code: "110105".into(),
        address: "北京市朝阳区建国路88号3栋201".into(),
        status: HouseholdStatus::Registered as i32,
        property_unit_number: "110105001002GB00017F00030201".into(),
        registered_on: Some(Date {
            year: 2008,
            month: 6,
            day: 1,
        }),
        destination_region_code: String::new(),
        destination_address: String::new(),
    }
}

/// A publish request for household registration `record_id` of person `i`, version 1.
pub(super) fn household_request(
    record_id: &str,
    i: u64,
) -> crate::proto::PublishHouseholdRegistrationRequest {
    crate::proto::PublishHouseholdRegistrationRequest {
        meta: meta(record_id),
        record: Some(household(i)),
    }
}

/// Calls `each` with every page of the keys under `prefix`, on every master.
pub(super) async fn each_key_page<F, Fut>(
    conn: &RedisConn,
    prefix: &str,
    mut each: F,
) -> anyhow::Result<()>
where
    F: FnMut(Vec<String>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let pattern = format!("{prefix}*");
    for node in conn.masters().await? {
        let mut cursor: u64 = 0;
        loop {
            let (next, keys) = conn.scan_page(&node, &pattern, cursor, 1000).await?;
            if !keys.is_empty() {
                each(keys).await?;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    Ok(())
}

/// A Redis prefix for a store of a scenario's own: `tag` and six random hex digits. Not
/// under the bench's prefix (clearing the bench's store must not reach it), and as long
/// as the default "govlink:", since key names count in the bytes measured.
pub(super) fn own_prefix(tag: &str) -> String {
    format!("{tag}{}:", &uuid::Uuid::new_v4().simple().to_string()[..6])
}

/// Deletes every key under `prefix`.
pub(super) async fn delete_prefix(link: &RedisLink, prefix: &str) -> anyhow::Result<()> {
    let conn = link.connect().await?;
    each_key_page(&conn, prefix, |keys| {
        let mut conn = conn.clone();
        async move {
            redis::cmd("UNLINK")
                .arg(&keys)
                .query_async::<i64>(&mut conn)
                .await?;
            Ok(())
        }
    })
    .await
}
