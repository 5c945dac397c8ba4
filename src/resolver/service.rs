//! The `Resolver` gRPC service: lookups over the materialized records, optionally
//! waiting until earlier publishes are materialized (read-your-writes).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tonic::{Request, Response, Status};

use super::query::{Queries, QueryError, RAW_READ_PURPOSE};
use super::watches::{NoticeStream, Watches};
use crate::grpc::caller_of;
use crate::grpc::{admit_requester, deadline};
use crate::identity::Caller;
use crate::identity::Requester;
use crate::limits::{Rate, RateLimiter};
use crate::proto::{self, resolver_server::Resolver};
use crate::proto::{
    GetRecordRequest, GetRecordResponse, ListSubjectRecordsRequest, ListSubjectRecordsResponse,
};
use crate::telemetry::events::LookupAnswered;
use crate::telemetry::metrics::Telemetry;

/// The most requesters whose lookup rate is tracked at once. Requesters come from a
/// fixed identity space, but the insecure header lets a caller name any: beyond this,
/// idle requesters' buckets (full again, so the same as new) make room.
const MAX_REQUESTERS: usize = 10_000;

/// Serves `govlink.v1.Resolver`.
pub struct ResolverService {
    /// The cross-agency lookups (policy, masking, audit).
    queries: Queries,
    /// The longest a lookup waits when the caller sets no deadline.
    max_wait: Duration,
    /// Where lookups are counted.
    telemetry: Telemetry,
    /// Each requester's lookups and checks per second.
    rate: RateLimiter<Requester>,
    /// The open `WatchDataAccesses` streams.
    watches: Arc<Watches>,
}

impl ResolverService {
    /// A resolver answering with `queries`; each requester makes at most `lookup_rate`
    /// lookups, checks and raw reads; they are counted in `telemetry`. Its streams end
    /// once `streams` is cancelled (when the server stops taking calls).
    pub fn new(
        queries: Queries,
        max_wait: Duration,
        lookup_rate: Rate,
        telemetry: Telemetry,
        streams: tokio_util::sync::CancellationToken,
    ) -> ResolverService {
        ResolverService {
            queries,
            max_wait,
            telemetry,
            rate: RateLimiter::new(lookup_rate, MAX_REQUESTERS),
            watches: Watches::new(streams),
        }
    }

    /// Takes one call from the requester's lookup rate: refused (`RESOURCE_EXHAUSTED`,
    /// counted) while it is used up. Checked once the caller is known and before any
    /// other work, so a refused call is neither validated nor audited: it read nothing.
    fn admit(&self, caller: &Caller) -> Result<(), Status> {
        admit_requester(&self.rate, &caller.requester, &self.telemetry, "lookup")
    }

    /// Runs the lookup `method` of `request` (whose purpose `purpose_of` gives) with the
    /// caller and deadline it carries, and counts it by method, purpose and decision.
    /// Every method answers through here, so every failure is answered and counted by
    /// [`QueryError::into_status`].
    async fn lookup<R, A, F>(
        &self,
        method: &'static str,
        request: Request<R>,
        purpose_of: impl FnOnce(&R) -> &str,
        run: impl FnOnce(Caller, R, Instant) -> F,
    ) -> Result<Response<A>, Status>
    where
        F: Future<Output = Result<A, QueryError>>,
    {
        let started = Instant::now();
        let purpose = self.queries.purpose_label(purpose_of(request.get_ref()));
        let answer = match caller_of(&request).and_then(|c| self.admit(&c).map(|()| c)) {
            Ok(caller) => {
                let deadline = deadline(&request, self.max_wait);
                let agency = caller.requester.agency;
                run(caller, request.into_inner(), deadline)
                    .await
                    .map_err(|e| e.into_status(agency, &self.telemetry))
            }
            Err(status) => Err(status),
        };
        let decision = match &answer {
            Ok(_) => "allowed",
            Err(s) if s.code() == tonic::Code::PermissionDenied => "denied",
            Err(s) if s.code() == tonic::Code::InvalidArgument => "invalid",
            Err(s) if s.code() == tonic::Code::ResourceExhausted => "limited",
            Err(_) => "failed",
        };
        self.telemetry.emit(LookupAnswered {
            method,
            purpose,
            decision,
            elapsed: started.elapsed(),
        });
        answer.map(Response::new)
    }
}

#[tonic::async_trait]
impl Resolver for ResolverService {
    #[tracing::instrument(skip_all, fields(rpc = "GetRecord"))]
    async fn get_record(
        &self,
        request: Request<GetRecordRequest>,
    ) -> Result<Response<GetRecordResponse>, Status> {
        self.lookup(
            "GetRecord",
            request,
            |_| RAW_READ_PURPOSE,
            |caller, r, deadline| async move { self.queries.record(&caller, r, deadline).await },
        )
        .await
    }

    #[tracing::instrument(skip_all, fields(rpc = "ListSubjectRecords"))]
    async fn list_subject_records(
        &self,
        request: Request<ListSubjectRecordsRequest>,
    ) -> Result<Response<ListSubjectRecordsResponse>, Status> {
        self.lookup(
            "ListSubjectRecords",
            request,
            |_| RAW_READ_PURPOSE,
            |caller, r, deadline| async move {
                self.queries.subject_records(&caller, r, deadline).await
            },
        )
        .await
    }

    #[tracing::instrument(skip_all, fields(rpc = "GetPersonProfile"))]
    async fn get_person_profile(
        &self,
        request: Request<proto::GetPersonProfileRequest>,
    ) -> Result<Response<proto::GetPersonProfileResponse>, Status> {
        self.lookup("GetPersonProfile", request, |r| &r.purpose, |caller, r, deadline| async move {
            self.queries.person_profile(&caller, r, deadline).await
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(rpc = "CheckPropertyTransfer"))]
    async fn check_property_transfer(
        &self,
        request: Request<proto::CheckPropertyTransferRequest>,
    ) -> Result<Response<proto::CheckPropertyTransferResponse>, Status> {
        self.lookup(
            "CheckPropertyTransfer",
            request,
            |r| &r.purpose,
            |caller, r, deadline| async move {
                self.queries.property_transfer(&caller, r, deadline).await
            },
        )
        .await
    }

    #[tracing::instrument(skip_all, fields(rpc = "CheckSocialSecurityTransfer"))]
    async fn check_social_security_transfer(
        &self,
        request: Request<proto::CheckSocialSecurityTransferRequest>,
    ) -> Result<Response<proto::CheckSocialSecurityTransferResponse>, Status> {
        self.lookup(
            "CheckSocialSecurityTransfer",
            request,
            |r| &r.purpose,
            |caller, r, deadline| async move {
                self.queries
                    .social_security_transfer(&caller, r, deadline)
                    .await
            },
        )
        .await
    }

    #[tracing::instrument(skip_all, fields(rpc = "CheckProvidentFundLoan"))]
    async fn check_provident_fund_loan(
        &self,
        request: Request<proto::CheckProvidentFundLoanRequest>,
    ) -> Result<Response<proto::CheckProvidentFundLoanResponse>, Status> {
        self.lookup(
            "CheckProvidentFundLoan",
            request,
            |r| &r.purpose,
            |caller, r, deadline| async move {
                self.queries.provident_fund_loan(&caller, r, deadline).await
            },
        )
        .await
    }

    #[tracing::instrument(skip_all, fields(rpc = "ListDataAccesses"))]
    async fn list_data_accesses(
        &self,
        request: Request<proto::ListDataAccessesRequest>,
    ) -> Result<Response<proto::ListDataAccessesResponse>, Status> {
        self.lookup("ListDataAccesses", request, |r| &r.purpose, |caller, r, deadline| async move {
            self.queries.data_accesses(&caller, r, deadline).await
        })
        .await
    }

    type WatchDataAccessesStream = NoticeStream;

    #[tracing::instrument(skip_all, fields(rpc = "WatchDataAccesses"))]
    async fn watch_data_accesses(
        &self,
        request: Request<proto::WatchDataAccessesRequest>,
    ) -> Result<Response<NoticeStream>, Status> {
        self.lookup(
            "WatchDataAccesses",
            request,
            |r| &r.purpose,
            |caller, r, deadline| async move {
                let (watch, slot) = self
                    .queries
                    .watch_data_accesses(&caller, r, |person| self.watches.slot(person), deadline)
                    .await?;
                let agency = caller.requester.agency;
                Ok(self
                    .watches
                    .stream(watch, slot, agency, self.telemetry.clone()))
            },
        )
        .await
    }
}
