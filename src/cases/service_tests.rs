//! The `Cases` and `Tasks` services over a case store whose Redis went away: every call
//! that reads the store answers `UNAVAILABLE`, and each failure is counted as a Redis
//! failure of the case engine (`govlink_redis_errors_total{component="cases"}`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::{Code, Request};

use super::{CasesService, Shared};
use crate::audit::{AuditLog, Writer};
use crate::cases::admission::Admission;
use crate::cases::store::CaseStore;
use crate::cases::tasks::TasksService;
use crate::identity::{Caller, Requester};
use crate::kafka::{Brokers, LinkSecurity, Publisher, Topics};
use crate::limits::Rate;
use crate::proto::cases_server::Cases as _;
use crate::proto::tasks_server::Tasks as _;
use crate::proto::{self, Agency};
use crate::redis_link::RedisLink;
use crate::resolver::Positions;
use crate::resolver::policy::Policy;
use crate::resolver::store::{MemoryStore, Store};
use crate::telemetry::metrics::{ComponentLabel, Metrics, Telemetry};

/// Replies to the connection set-up (two `CLIENT SETINFO` commands, 9 CRLFs each), then
/// Redis is gone: the connection is closed and nothing listens at the address any more.
async fn redis_that_goes_away() -> CaseStore {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let gone = tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut read = Vec::new();
        let mut buf = [0u8; 512];
        while read.windows(2).filter(|w| w == b"\r\n").count() < 18 {
            let n = conn.read(&mut buf).await.unwrap();
            assert!(n > 0, "the client hung up during set-up");
            read.extend_from_slice(&buf[..n]);
        }
        conn.write_all(b"+OK\r\n+OK\r\n").await.unwrap();
        conn.flush().await.unwrap();
        // Dropping both: the connection closes and the port refuses from now on.
    });
    let link =
        RedisLink::new(format!("redis://{address}/")).with_connect_timeout(Duration::from_secs(5));
    let store = CaseStore::connect(&link, "t:").await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), gone)
        .await
        .expect("set-up answered")
        .unwrap();
    store
}

/// What the services share, over `cases`, with a broker nobody answers at (no call here
/// reaches it) and the example policy.
async fn shared(cases: CaseStore, telemetry: Telemetry) -> Shared {
    let brokers = Brokers::new("127.0.0.1:1", LinkSecurity::default());
    let publisher = Publisher::new(&brokers, Duration::from_secs(1), 16).unwrap();
    let topics = Topics::new("t.");
    let writer = Writer {
        role: "cases",
        host: "test".into(),
        signer: None,
    };
    let audit = AuditLog::start(publisher.clone(), &topics, writer, telemetry.clone())
        .await
        .unwrap();
    let policy = Policy::parse(include_str!("../../deploy/policy.toml")).unwrap();
    Shared {
        cases,
        publisher,
        topics,
        policy: Arc::new(policy),
        audit,
        telemetry,
        admission: Admission::new(Rate::new(1_000, 1_000)),
        max_wait: Duration::from_secs(2),
        stop: CancellationToken::new(),
    }
}

/// `message` as called by `requester`.
fn call<T>(requester: Requester, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.extensions_mut().insert(Caller {
        requester,
        on_behalf_of: None,
    });
    request
}

fn redis_errors(telemetry: &Telemetry) -> u64 {
    telemetry
        .redis_errors
        .get_or_create(&ComponentLabel { component: "cases" })
        .get()
}

fn assert_store_unavailable(status: &tonic::Status) {
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(
        status.message(),
        "the case store is unavailable; retry later",
        "{status:?}"
    );
}

#[tokio::test]
async fn a_case_store_that_cannot_be_reached_answers_unavailable_and_is_counted() {
    let telemetry = Metrics::new();
    let shared = shared(redis_that_goes_away().await, telemetry.clone()).await;
    let positions = Positions::new(Store::Memory(MemoryStore::new()), BTreeMap::new());
    let cases = CasesService::new(shared.clone(), positions);
    let tasks = TasksService::new(shared);
    let window = Requester::new(Agency::Housing, "transfer-window");
    let records = Requester::new(Agency::Housing, "records");

    let get = proto::GetCaseRequest {
        case_id: "case-1".into(),
    };
    let refused = cases.get_case(call(window, get)).await.unwrap_err();
    assert_store_unavailable(&refused);
    assert_eq!(
        redis_errors(&telemetry),
        1,
        "GetCase's failed read is counted"
    );

    let ack = proto::AckTaskRequest {
        task_id: "case-1/registration.1".into(),
    };
    let refused = tasks.ack(call(records.clone(), ack)).await.unwrap_err();
    assert_store_unavailable(&refused);
    assert_eq!(
        redis_errors(&telemetry),
        2,
        "Tasks.Ack's failed read is counted"
    );

    let stream = tasks
        .stream(call(records, proto::StreamTasksRequest::default()))
        .await
        .expect("an integration may open its task stream");
    let sent: Vec<_> = tokio::time::timeout(Duration::from_secs(5), stream.into_inner().collect())
        .await
        .expect("the stream ends");
    let [Err(refused)] = &sent[..] else {
        panic!("the stream ends on the store's failure: {sent:?}");
    };
    assert_store_unavailable(refused);
    assert_eq!(
        redis_errors(&telemetry),
        3,
        "a stream's failed read is counted"
    );
}
