//! Agency adapters: one gRPC service per agency, sharing one publish path. An adapter
//! validates what its agency sends, wraps it in a `RecordEvent` and acknowledges only
//! once the broker has it.
//!
//! An agency's file holds only its record types, as the table `agency_adapter!`
//! makes its service from; the publish path is here and beside it: who and how much it
//! admits (`admission`), what it checks (`check`), how it publishes (`publish`), and why
//! it refuses or fails, answered and counted in one place (`error`).

mod admission;
mod agency;
mod check;
mod error;
mod housing;
mod provident_fund;
mod public_security;
mod publish;
mod social_security;

pub use check::{BatchOneof, Item, Prepared, check_batch_size, check_item, check_items};
pub use error::AdapterError;
pub use housing::Housing;
pub use provident_fund::ProvidentFund;
pub use public_security::PublicSecurity;
pub use social_security::SocialSecurity;

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tonic::{Request, Response, Status};

use crate::audit::AuditLog;
use crate::grpc::deadline;
use crate::kafka::{Publisher, Topics};
use crate::limits::{Rate, RateLimiter};
use crate::proto::{Agency, PublishAck, PublishBatchResponse, PublishMeta};
use crate::records::AGENCIES;
use crate::resolver::policy::Policy;
use crate::telemetry::metrics::Telemetry;
use error::answer;

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

    /// A publish RPC of one item of `agency` (a record's new version, or its deletion):
    /// `item` takes the request apart into that item.
    pub(crate) async fn item_rpc<T>(
        &self,
        agency: Agency,
        request: Request<T>,
        item: impl FnOnce(T) -> Item,
    ) -> Result<Response<PublishAck>, Status> {
        let started = Instant::now();
        self.admitted(agency, &request, started).await?;
        let deadline = deadline(&request, self.max_wait);
        let result = self
            .publish(agency, item(request.into_inner()), deadline)
            .await;
        answer(&self.telemetry, agency, 1, started, result).map(Response::new)
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
        answer(&self.telemetry, agency, records, started, result)
            .map(|acks| Response::new(PublishBatchResponse { acks }))
    }
}
