//! Agency adapters: one gRPC service per agency, sharing one publish path. An adapter
//! validates what its agency sends, wraps it in a `RecordEvent` and acknowledges only
//! once the broker has it.

mod agency;
mod check;
mod housing;
mod provident_fund;
mod public_security;
mod social_security;

pub use check::{BatchOneof, Item, Prepared, check_batch_size, check_item, check_items};
pub use housing::Housing;
pub use provident_fund::ProvidentFund;
pub use public_security::PublicSecurity;
pub use social_security::SocialSecurity;

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use prost::Message;
use tokio::time::Instant;
use tonic::{Request, Response, Status};

use crate::audit::AuditLog;
use crate::grpc::{deadline, invalid_argument};
use crate::kafka::{Enqueued, PublishError, Publisher, Topics};
use crate::limits::{Rate, RateLimiter, exhausted};
use crate::proto::{
    Agency, DeleteRecordRequest, PublishAck, PublishBatchResponse, PublishMeta, RecordEvent,
    record_event::Payload,
};
use crate::records::{AGENCIES, Horizon, RecordKey, Violations, agency_slug};
use crate::resolver::policy::Policy;
use crate::telemetry::events::{Limit, Limited, Published, outcome_of};
use crate::telemetry::metrics::Telemetry;
use crate::tls::Peer;

/// The items of a batch request, each taken apart by `split` into its meta and oneof.
pub fn batch_items<I>(
    items: Vec<I>,
    split: impl Fn(I) -> (Option<PublishMeta>, BatchOneof),
) -> Vec<Item> {
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let (meta, oneof) = split(item);
            Item::batch(i, meta, oneof)
        })
        .collect()
}

/// What a publish path admits.
#[derive(Debug, Clone, Copy)]
pub struct PublishLimits {
    /// The most items one batch may carry.
    pub max_batch: usize,
    /// Records per second per agency.
    pub rate: Rate,
}

/// Who may publish through an adapter.
pub enum Publishers {
    /// Anyone who reaches the port: no TLS (`dev`, `demo` and tests).
    Anyone,
    /// Only the adapter's agency's record systems: callers whose verified client
    /// certificate names an integration of the policy of the adapter's agency. Any other
    /// caller — another agency's, or another service of the same agency — is refused
    /// `PERMISSION_DENIED`, and the attempt is an entry of the audit trail.
    Integrations {
        /// Lists the integrations.
        policy: Arc<Policy>,
        /// Where refused attempts are recorded.
        audit: AuditLog,
    },
}

/// The publish path shared by every agency's adapter.
pub struct PublishPath {
    /// Who may publish.
    publishers: Publishers,
    publisher: Publisher,
    topics: Topics,
    /// The most items one batch may carry.
    max_batch: usize,
    /// Each agency's records per second.
    rate: RateLimiter<Agency>,
    /// The longest a publish waits for the broker when the caller sets no deadline.
    max_wait: Duration,
    /// How far ahead of our clock an agency's times and dates may lie.
    max_clock_skew: Duration,
    /// Where publishes are counted.
    telemetry: Telemetry,
}

impl PublishPath {
    /// A publish path over `publisher` open to `publishers`, counting its publishes in
    /// `telemetry`.
    pub fn new(
        publishers: Publishers,
        publisher: Publisher,
        topics: Topics,
        limits: PublishLimits,
        max_wait: Duration,
        max_clock_skew: Duration,
        telemetry: Telemetry,
    ) -> Arc<PublishPath> {
        Arc::new(PublishPath {
            publishers,
            publisher,
            topics,
            max_batch: limits.max_batch,
            rate: RateLimiter::new(limits.rate, AGENCIES.len()),
            max_wait,
            max_clock_skew,
            telemetry,
        })
    }

    /// [`Self::admit`], counting a refusal as a publish of nothing.
    async fn admitted<T>(
        &self,
        agency: Agency,
        request: &Request<T>,
        started: Instant,
    ) -> Result<(), Status> {
        let admitted = self.admit(agency, request).await;
        if admitted.is_err() {
            self.observe(agency, 0, started, &admitted);
        }
        admitted
    }

    /// Counts a publish call of `records` records that started at `started`.
    fn observe<T>(
        &self,
        agency: Agency,
        records: usize,
        started: Instant,
        result: &Result<T, Status>,
    ) {
        self.telemetry.emit(Published {
            agency,
            records,
            outcome: outcome_of(result),
            elapsed: started.elapsed(),
        });
    }

    /// Lets the call through if its caller is one of `agency`'s record systems (an
    /// integration of the policy); otherwise audits the attempt and refuses it.
    async fn admit<T>(&self, agency: Agency, request: &Request<T>) -> Result<(), Status> {
        let Publishers::Integrations { policy, audit } = &self.publishers else {
            return Ok(());
        };
        let peer = request.extensions().get::<Peer>().ok_or_else(|| {
            Status::unauthenticated("no verified client certificate on this call")
        })?;
        let slug = agency_slug(agency);
        let reason = if peer.requester.agency != agency {
            format!(
                "only {slug}'s systems may publish through the {slug} adapter; the client certificate is {}'s",
                peer.requester
            )
        } else {
            match policy.integration(&peer.requester) {
                Ok(()) => return Ok(()),
                Err(not) => not.to_string(),
            }
        };
        // As the trail names other methods: `PublicSecurityAdapter.PublishBatch`.
        let crate::grpc::CallMethod(path) = request.into();
        let method = path.trim_start_matches("govlink.v1.").replace('/', ".");
        let attempt = crate::audit::Access {
            requester: &peer.requester,
            on_behalf_of: None,
            method: &method,
            purpose: "publish",
            case_id: "",
            persons: Vec::new(),
            units: Vec::new(),
        }
        .denied(reason.as_str());
        // Refused either way; an attempt the trail could not take is at least logged.
        if let Err(e) = audit
            .record(attempt, deadline(request, self.max_wait))
            .await
        {
            tracing::error!(error = %e, requester = %peer.requester, adapter = slug, "refused publish not audited");
        }
        Err(Status::permission_denied(reason))
    }

    /// Takes `records` from `agency`'s publish rate before any validation work: refused
    /// (`RESOURCE_EXHAUSTED`, counted) while they are not there, and then nothing of the
    /// call is published.
    fn admit_rate(&self, agency: Agency, records: usize) -> Result<(), Status> {
        self.rate.check(&agency, records as u64).map_err(|wait| {
            self.refused(Limit::PublishRate, agency);
            let rate = self.rate.rate();
            exhausted(
                format!(
                    "publish rate limit of {} exceeded ({} records per second, bursts of {}): \
                     none of the call's {records} records was published",
                    agency_slug(agency),
                    rate.per_second(),
                    rate.burst()
                ),
                wait,
            )
        })
    }

    /// Counts a call of `agency` refused by `limit`.
    fn refused(&self, limit: Limit, agency: Agency) {
        self.telemetry.emit(Limited { limit, agency });
    }

    /// `INVALID_ARGUMENT` for `violations`, counted as a field-length refusal when a field
    /// was over its length.
    fn invalid(&self, agency: Agency, violations: &Violations) -> Status {
        crate::grpc::refuse_fields(violations, &self.telemetry, agency)
    }

    /// A single-record publish RPC: `split` takes the request apart into meta and payload.
    pub(crate) async fn upsert_rpc<T>(
        &self,
        agency: Agency,
        request: Request<T>,
        split: impl FnOnce(T) -> (Option<PublishMeta>, Option<Payload>),
    ) -> Result<Response<PublishAck>, Status> {
        let started = Instant::now();
        self.admitted(agency, &request, started).await?;
        let deadline = deadline(&request, self.max_wait);
        let (meta, payload) = split(request.into_inner());
        let result = self
            .publish(agency, Item::upsert(meta, payload), deadline)
            .await;
        self.observe(agency, 1, started, &result);
        result.map(Response::new)
    }

    /// The `DeleteRecord` RPC of `agency`.
    pub(crate) async fn delete_rpc(
        &self,
        agency: Agency,
        request: Request<DeleteRecordRequest>,
    ) -> Result<Response<PublishAck>, Status> {
        let started = Instant::now();
        self.admitted(agency, &request, started).await?;
        let deadline = deadline(&request, self.max_wait);
        let r = request.into_inner();
        let result = self
            .publish(agency, Item::delete(r.meta, r.record_type), deadline)
            .await;
        self.observe(agency, 1, started, &result);
        result.map(Response::new)
    }

    /// The `PublishBatch` RPC of `agency`: `split` takes one batch item apart into its meta
    /// and its oneof — a record (`Ok`) or a deleted record type (`Err`) — with the oneof
    /// field's name; `None` when the oneof is unset.
    pub(crate) async fn batch_rpc<T, I>(
        &self,
        agency: Agency,
        request: Request<T>,
        items: impl FnOnce(T) -> Vec<I>,
        split: impl Fn(I) -> (Option<PublishMeta>, BatchOneof),
    ) -> Result<Response<PublishBatchResponse>, Status> {
        let started = Instant::now();
        self.admitted(agency, &request, started).await?;
        let deadline = deadline(&request, self.max_wait);
        let items = batch_items(items(request.into_inner()), split);
        let records = items.len();
        let result = self.publish_batch(agency, items, deadline).await;
        self.observe(agency, records, started, &result);
        Ok(Response::new(PublishBatchResponse { acks: result? }))
    }

    /// Validates and publishes one item of `agency`.
    async fn publish(
        &self,
        agency: Agency,
        item: Item,
        deadline: Instant,
    ) -> Result<PublishAck, Status> {
        self.admit_rate(agency, 1)?;
        match check_item(agency, item, &Horizon::now(self.max_clock_skew)) {
            Ok(prepared) => self.send(prepared, deadline).await,
            Err(violations) => Err(self.invalid(agency, &violations)),
        }
    }

    /// Validates every item of a batch, then publishes them all; nothing is published if
    /// any item is invalid. The acks come back in item order.
    async fn publish_batch(
        &self,
        agency: Agency,
        items: Vec<Item>,
        deadline: Instant,
    ) -> Result<Vec<PublishAck>, Status> {
        let violations = check_batch_size(items.len(), self.max_batch);
        if !violations.is_empty() {
            if items.len() > self.max_batch {
                self.refused(Limit::BatchSize, agency);
            }
            return Err(invalid_argument(&violations));
        }
        self.admit_rate(agency, items.len())?;
        let horizon = Horizon::now(self.max_clock_skew);
        let events = check_items(agency, items, &horizon)
            .map_err(|violations| self.invalid(agency, &violations))?;
        // Enqueued one after the other, so items of one key land in item order; the acks
        // are awaited together, so the batch costs about one broker round trip.
        let mut pending = Vec::with_capacity(events.len());
        for event in events {
            match self.enqueue(event, deadline).await {
                Ok(p) => pending.push(p),
                Err(status) => return Err(batch_failure(&status, None)),
            }
        }
        let results = join_all(pending.into_iter().map(|p| self.acked(p, deadline))).await;
        let failed = results.iter().filter(|r| r.is_err()).count();
        if let Some(first) = results.iter().find_map(|r| r.as_ref().err()) {
            return Err(batch_failure(first, Some(failed)));
        }
        Ok(results.into_iter().flatten().collect())
    }

    /// Publishes one validated item and waits for the broker's ack.
    async fn send(&self, prepared: Prepared, deadline: Instant) -> Result<PublishAck, Status> {
        let pending = self.enqueue(prepared, deadline).await?;
        self.acked(pending, deadline).await
    }

    /// Hands one validated item to the producer, without waiting for the broker.
    async fn enqueue(&self, prepared: Prepared, deadline: Instant) -> Result<Pending, Status> {
        let Prepared { agency, key, event } = prepared;
        let topic = self.topics.records(agency);
        let payload = event.encode_to_vec();
        let started = std::time::Instant::now();
        let enqueued = self
            .publisher
            .enqueue(
                &topic,
                key.as_str().as_bytes(),
                &payload,
                &[("govlink-schema", b"govlink.v1.RecordEvent")],
                deadline,
            )
            .await;
        match enqueued {
            Ok(enqueued) => Ok(Pending {
                agency,
                key,
                event,
                started,
                enqueued,
            }),
            Err(e) => Err(not_acknowledged(agency, &event.record_type, e)),
        }
    }

    /// Waits for the broker's ack of an enqueued item.
    async fn acked(&self, pending: Pending, deadline: Instant) -> Result<PublishAck, Status> {
        let Pending {
            agency,
            key,
            event,
            started,
            enqueued,
        } = pending;
        match enqueued.ack(deadline).await {
            Ok(position) => {
                tracing::debug!(
                    agency = agency_slug(agency),
                    record_type = event.record_type,
                    version = event.version,
                    partition = position.partition,
                    offset = position.offset,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "record published"
                );
                Ok(PublishAck {
                    event_id: event.event_id,
                    record_key: key.to_string(),
                    version: event.version,
                    position: Some(position),
                })
            }
            Err(e) => Err(not_acknowledged(agency, &event.record_type, e)),
        }
    }
}

/// An item handed to the producer, awaiting the broker's ack.
struct Pending {
    agency: Agency,
    key: RecordKey,
    event: RecordEvent,
    started: std::time::Instant,
    enqueued: Enqueued,
}

/// The status for a record the broker did not acknowledge. Logged per call at debug only:
/// the producer logs the broker's state changes and a fatal error once, which is what an
/// operator acts on; a WARN per call would flood the log during an outage.
fn not_acknowledged(agency: Agency, record_type: &str, e: PublishError) -> Status {
    tracing::debug!(
        agency = agency_slug(agency),
        record_type,
        error = %e,
        "publish not acknowledged"
    );
    match e {
        PublishError::Unavailable(reason) => Status::unavailable(format!(
            "the broker did not acknowledge the record: {reason}; retrying is safe"
        )),
        PublishError::DeadlineExceeded => Status::deadline_exceeded(
            "the deadline ran out before the broker acknowledged the record (the broker is \
             reachable: allow more time); the record may still be published; retrying with \
             the same version is safe",
        ),
        PublishError::TooLarge => {
            Status::invalid_argument("record is larger than the broker accepts")
        }
        // Not the reason itself: it is librdkafka's internal detail, logged by the producer.
        PublishError::Fatal(_) => Status::unavailable(
            "this adapter's producer failed permanently and the adapter is restarting; \
             retry with the same version once it is back (another instance may serve it \
             sooner)",
        ),
    }
}

/// The status of a batch of which `failed` items (or some, when unknown) were not
/// acknowledged, after the first failure `first`.
fn batch_failure(first: &Status, failed: Option<usize>) -> Status {
    let which = failed.map_or_else(|| "some".to_owned(), |n| n.to_string());
    Status::new(
        first.code(),
        format!(
            "{which} items were not acknowledged ({}); some others may have been \
             published: retry the whole batch, versions make that safe",
            first.message()
        ),
    )
}
