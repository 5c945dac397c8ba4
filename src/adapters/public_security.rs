//! The public-security bureau's adapter (identity, household registration).

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{BatchOneof, PublishPath};
use crate::proto::public_security_adapter_server::PublicSecurityAdapter;
use crate::proto::public_security_batch_item::Record;
use crate::proto::{
    Agency, DeleteRecordRequest, PublicSecurityBatchItem, PublishAck, PublishBatchResponse,
    PublishHouseholdRegistrationRequest, PublishIdentityRequest, PublishMeta,
    PublishPublicSecurityBatchRequest, record_event::Payload,
};

const AGENCY: Agency = Agency::PublicSecurity;

/// Serves `govlink.v1.PublicSecurityAdapter`.
pub struct PublicSecurity(pub Arc<PublishPath>);

impl PublicSecurity {
    /// One item of a `PublishBatch` request taken apart into its meta and its oneof, as
    /// the adapter validates it.
    pub fn batch_item(item: PublicSecurityBatchItem) -> (Option<PublishMeta>, BatchOneof) {
        let record = item.record.map(|record| match record {
            Record::Identity(r) => (Ok(Payload::Identity(r)), "identity"),
            Record::HouseholdRegistration(r) => (
                Ok(Payload::HouseholdRegistration(r)),
                "household_registration",
            ),
            Record::DeletedRecordType(t) => (Err(t), "deleted_record_type"),
        });
        (item.meta, record)
    }
}

#[tonic::async_trait]
impl PublicSecurityAdapter for PublicSecurity {
    async fn publish_identity(
        &self,
        request: Request<PublishIdentityRequest>,
    ) -> Result<Response<PublishAck>, Status> {
        self.0
            .upsert_rpc(AGENCY, request, |r| {
                (r.meta, r.record.map(Payload::Identity))
            })
            .await
    }

    async fn publish_household_registration(
        &self,
        request: Request<PublishHouseholdRegistrationRequest>,
    ) -> Result<Response<PublishAck>, Status> {
        self.0
            .upsert_rpc(AGENCY, request, |r| {
                (r.meta, r.record.map(Payload::HouseholdRegistration))
            })
            .await
    }

    async fn delete_record(
        &self,
        request: Request<DeleteRecordRequest>,
    ) -> Result<Response<PublishAck>, Status> {
        self.0.delete_rpc(AGENCY, request).await
    }

    async fn publish_batch(
        &self,
        request: Request<PublishPublicSecurityBatchRequest>,
    ) -> Result<Response<PublishBatchResponse>, Status> {
        self.0
            .batch_rpc(AGENCY, request, |r| r.items, PublicSecurity::batch_item)
            .await
    }
}
