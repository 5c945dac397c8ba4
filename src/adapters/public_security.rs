//! The public-security bureau's adapter (identity, household registration).

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{Item, PublishPath};
use crate::grpc::deadline;
use crate::proto::public_security_adapter_server::PublicSecurityAdapter;
use crate::proto::public_security_batch_item::Record;
use crate::proto::{
    Agency, DeleteRecordRequest, PublishAck, PublishBatchResponse,
    PublishHouseholdRegistrationRequest, PublishIdentityRequest, PublishPublicSecurityBatchRequest,
    record_event::Payload,
};

const AGENCY: Agency = Agency::PublicSecurity;

/// Serves `govlink.v1.PublicSecurityAdapter`.
pub struct PublicSecurity(pub Arc<PublishPath>);

#[tonic::async_trait]
impl PublicSecurityAdapter for PublicSecurity {
    async fn publish_identity(
        &self,
        request: Request<PublishIdentityRequest>,
    ) -> Result<Response<PublishAck>, Status> {
        let deadline = deadline(&request, self.0.max_wait());
        let r = request.into_inner();
        let item = Item::upsert(r.meta, r.record.map(Payload::Identity));
        self.0
            .publish(AGENCY, item, deadline)
            .await
            .map(Response::new)
    }

    async fn publish_household_registration(
        &self,
        request: Request<PublishHouseholdRegistrationRequest>,
    ) -> Result<Response<PublishAck>, Status> {
        let deadline = deadline(&request, self.0.max_wait());
        let r = request.into_inner();
        let item = Item::upsert(r.meta, r.record.map(Payload::HouseholdRegistration));
        self.0
            .publish(AGENCY, item, deadline)
            .await
            .map(Response::new)
    }

    async fn delete_record(
        &self,
        request: Request<DeleteRecordRequest>,
    ) -> Result<Response<PublishAck>, Status> {
        let deadline = deadline(&request, self.0.max_wait());
        let r = request.into_inner();
        let item = Item::delete(r.meta, r.record_type);
        self.0
            .publish(AGENCY, item, deadline)
            .await
            .map(Response::new)
    }

    async fn publish_batch(
        &self,
        request: Request<PublishPublicSecurityBatchRequest>,
    ) -> Result<Response<PublishBatchResponse>, Status> {
        let deadline = deadline(&request, self.0.max_wait());
        let items = request
            .into_inner()
            .items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                let (body, field) = match item.record {
                    Some(Record::Identity(r)) => (Ok(Payload::Identity(r)), "identity"),
                    Some(Record::HouseholdRegistration(r)) => (
                        Ok(Payload::HouseholdRegistration(r)),
                        "household_registration",
                    ),
                    Some(Record::DeletedRecordType(t)) => (Err(t), "deleted_record_type"),
                    None => return Item::upsert(item.meta, None).in_batch(i, "record"),
                };
                super::batch_item(item.meta, body).in_batch(i, field)
            })
            .collect();
        let acks = self.0.publish_batch(AGENCY, items, deadline).await?;
        Ok(Response::new(PublishBatchResponse { acks }))
    }
}
