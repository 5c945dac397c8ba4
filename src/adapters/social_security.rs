//! The social-security bureau's adapter.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{Item, PublishPath};
use crate::grpc::deadline;
use crate::proto::social_security_adapter_server::SocialSecurityAdapter;
use crate::proto::social_security_batch_item::Record;
use crate::proto::{
    Agency, DeleteRecordRequest, PublishAck, PublishBatchResponse,
    PublishContributionPeriodRequest, PublishEnrollmentRequest, PublishSocialSecurityBatchRequest,
    PublishTransferOutCertificateRequest, record_event::Payload,
};

const AGENCY: Agency = Agency::SocialSecurity;

/// Serves `govlink.v1.SocialSecurityAdapter`.
pub struct SocialSecurity(pub Arc<PublishPath>);

#[tonic::async_trait]
impl SocialSecurityAdapter for SocialSecurity {
    async fn publish_enrollment(
        &self,
        request: Request<PublishEnrollmentRequest>,
    ) -> Result<Response<PublishAck>, Status> {
        let deadline = deadline(&request, self.0.max_wait());
        let r = request.into_inner();
        let item = Item::upsert(r.meta, r.record.map(Payload::Enrollment));
        self.0
            .publish(AGENCY, item, deadline)
            .await
            .map(Response::new)
    }

    async fn publish_contribution_period(
        &self,
        request: Request<PublishContributionPeriodRequest>,
    ) -> Result<Response<PublishAck>, Status> {
        let deadline = deadline(&request, self.0.max_wait());
        let r = request.into_inner();
        let item = Item::upsert(r.meta, r.record.map(Payload::ContributionPeriod));
        self.0
            .publish(AGENCY, item, deadline)
            .await
            .map(Response::new)
    }

    async fn publish_transfer_out_certificate(
        &self,
        request: Request<PublishTransferOutCertificateRequest>,
    ) -> Result<Response<PublishAck>, Status> {
        let deadline = deadline(&request, self.0.max_wait());
        let r = request.into_inner();
        let item = Item::upsert(r.meta, r.record.map(Payload::TransferOutCertificate));
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
        request: Request<PublishSocialSecurityBatchRequest>,
    ) -> Result<Response<PublishBatchResponse>, Status> {
        let deadline = deadline(&request, self.0.max_wait());
        let items = request
            .into_inner()
            .items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                let (body, field) = match item.record {
                    Some(Record::Enrollment(r)) => (Ok(Payload::Enrollment(r)), "enrollment"),
                    Some(Record::ContributionPeriod(r)) => {
                        (Ok(Payload::ContributionPeriod(r)), "contribution_period")
                    }
                    Some(Record::TransferOutCertificate(r)) => (
                        Ok(Payload::TransferOutCertificate(r)),
                        "transfer_out_certificate",
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
