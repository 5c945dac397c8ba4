//! The `Resolver` gRPC service: lookups over the materialized records, optionally
//! waiting until earlier publishes are materialized (read-your-writes).

use std::time::Duration;

use tokio::time::Instant;
use tonic::{Request, Response, Status};

use super::policy::Requester;
use super::positions::Positions;
use super::query::{Caller, Queries, QueryError, caller_of, parse_subject};
use super::store::{Store, StoreError, StoredRecord, by_deadline};
use crate::grpc::{admit_requester, deadline, invalid_argument, invalid_field};
use crate::limits::{Rate, RateLimiter};
use crate::ops::events::{Limit, Limited, LookupAnswered, RedisFailed};
use crate::ops::metrics::Telemetry;
use crate::proto::{self, resolver_server::Resolver};
use crate::proto::{
    Agency, GetRecordRequest, GetRecordResponse, ListSubjectRecordsRequest,
    ListSubjectRecordsResponse, Position, RecordEvent,
};
use crate::records::{RecordKey, agency_slug};

/// The most requesters whose lookup rate is tracked at once. Requesters come from a
/// fixed identity space, but the insecure header lets a caller name any: beyond this,
/// idle requesters' buckets (full again, so the same as new) make room.
const MAX_REQUESTERS: usize = 10_000;

/// Serves `govlink.v1.Resolver`.
pub struct ResolverService {
    store: Store,
    positions: Positions,
    /// The cross-agency lookups (policy, masking, audit).
    queries: Queries,
    /// The longest a lookup waits when the caller sets no deadline.
    max_wait: Duration,
    /// Where lookups are counted.
    telemetry: Telemetry,
    /// Each requester's lookups and checks per second.
    rate: RateLimiter<Requester>,
}

impl ResolverService {
    /// A resolver over `store`; `positions` knows how far it is materialized; each
    /// requester makes at most `lookup_rate` lookups and checks; lookups are counted in
    /// `telemetry`.
    pub fn new(
        queries: Queries,
        store: Store,
        positions: Positions,
        max_wait: Duration,
        lookup_rate: Rate,
        telemetry: Telemetry,
    ) -> ResolverService {
        ResolverService {
            store,
            positions,
            queries,
            max_wait,
            telemetry,
            rate: RateLimiter::new(lookup_rate, MAX_REQUESTERS),
        }
    }

    /// Takes one call from the requester's lookup rate: refused (`RESOURCE_EXHAUSTED`,
    /// counted) while it is used up. Checked once the caller is known and before any
    /// other work, so a refused call is neither validated nor audited: it read nothing.
    fn admit(&self, caller: &Caller) -> Result<(), Status> {
        admit_requester(&self.rate, &caller.requester, &self.telemetry, "lookup")
    }

    /// A refusal for its fields, counted as a field-length refusal when a field was over
    /// its length.
    fn refused(&self, agency: Agency, e: QueryError) -> Status {
        if let QueryError::Invalid(v) = &e
            && v.too_long()
        {
            self.telemetry.emit(Limited {
                limit: Limit::FieldLength,
                agency,
            });
        }
        Status::from(e)
    }

    /// The answer to a read the store failed; a Redis failure is counted.
    fn store_unavailable(&self, e: StoreError) -> Status {
        match e {
            StoreError::NotReady(why) => Status::unavailable(format!("{why}; retry later")),
            e => {
                self.telemetry.emit(RedisFailed {
                    component: "resolver",
                    error: &e,
                });
                Status::unavailable("the record store is unavailable; retry later")
            }
        }
    }

    /// Runs the lookup `method` of `request` (whose purpose `purpose_of` gives) with the
    /// caller and deadline it carries, and counts it by method, purpose and decision.
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
                    .map_err(|e| self.refused(agency, e))
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

    /// Waits until every position is materialized, or the deadline passes.
    async fn wait_for(&self, positions: &[Position], deadline: Instant) -> Result<(), Status> {
        self.positions.wait_for_call(positions, deadline).await
    }
}

#[tonic::async_trait]
impl Resolver for ResolverService {
    #[tracing::instrument(skip_all, fields(rpc = "GetRecord"))]
    async fn get_record(
        &self,
        request: Request<GetRecordRequest>,
    ) -> Result<Response<GetRecordResponse>, Status> {
        let caller = caller_of(&request)?;
        self.admit(&caller)?;
        let deadline = deadline(&request, self.max_wait);
        let r = request.into_inner();
        let key = RecordKey::parse(&r.record_key).map_err(|e| invalid_field("record_key", e))?;
        let owner = key.record_type().agency();
        if owner != caller.requester.agency {
            return Err(Status::permission_denied(format!(
                "raw records are their agency's own: {} reads {}'s records; {}'s are read \
                 through the policy (GetPersonProfile and the checks)",
                caller.requester,
                agency_slug(caller.requester.agency),
                agency_slug(owner)
            )));
        }
        self.wait_for(&r.min_positions, deadline).await?;
        let stored = by_deadline(deadline, self.store.get(&key))
            .await
            .map_err(|e| self.store_unavailable(e))?;
        let Some(stored) = stored else {
            return Err(Status::not_found(
                "no such record (never published, or deleted)",
            ));
        };
        Ok(Response::new(GetRecordResponse {
            record: Some(decode(&stored)?),
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "ListSubjectRecords"))]
    async fn list_subject_records(
        &self,
        request: Request<ListSubjectRecordsRequest>,
    ) -> Result<Response<ListSubjectRecordsResponse>, Status> {
        let caller = caller_of(&request)?;
        self.admit(&caller)?;
        let deadline = deadline(&request, self.max_wait);
        let r = request.into_inner();
        let key = parse_subject(r.subject.as_ref()).map_err(|v| invalid_argument(&v))?;
        self.wait_for(&r.min_positions, deadline).await?;
        let stored = by_deadline(deadline, self.store.subject_records(&key))
            .await
            .map_err(|e| self.store_unavailable(e))?;
        // Raw records are their agency's own: the caller's agency's only.
        let records = stored
            .iter()
            .filter(|s| s.key.record_type().agency() == caller.requester.agency)
            .map(decode)
            .collect::<Result<_, _>>()?;
        Ok(Response::new(ListSubjectRecordsResponse { records }))
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
}

fn decode(stored: &StoredRecord) -> Result<RecordEvent, Status> {
    stored.decode().map_err(|e| {
        tracing::error!(error = %e, key = %stored.key, "stored record does not decode");
        Status::internal("internal error")
    })
}
