//! The social-security bureau's adapter.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{BatchOneof, PublishPath};
use crate::proto::social_security_adapter_server::SocialSecurityAdapter;
use crate::proto::social_security_batch_item::Record;
use crate::proto::{
    Agency, DeleteRecordRequest, PublishAck, PublishBatchResponse,
    PublishContributionPeriodRequest, PublishEnrollmentRequest, PublishMeta,
    PublishSocialSecurityBatchRequest, PublishTransferOutCertificateRequest,
    SocialSecurityBatchItem, record_event::Payload,
};

const AGENCY: Agency = Agency::SocialSecurity;

/// Serves `govlink.v1.SocialSecurityAdapter`.
pub struct SocialSecurity(pub Arc<PublishPath>);

impl SocialSecurity {
    /// One item of a `PublishBatch` request taken apart into its meta and its oneof, as
    /// the adapter validates it.
    pub fn batch_item(item: SocialSecurityBatchItem) -> (Option<PublishMeta>, BatchOneof) {
        let record = item.record.map(|record| match record {
            Record::Enrollment(r) => (Ok(Payload::Enrollment(r)), "enrollment"),
            Record::ContributionPeriod(r) => {
                (Ok(Payload::ContributionPeriod(r)), "contribution_period")
            }
            Record::TransferOutCertificate(r) => (
                Ok(Payload::TransferOutCertificate(r)),
                "transfer_out_certificate",
            ),
            Record::DeletedRecordType(t) => (Err(t), "deleted_record_type"),
        });
        (item.meta, record)
    }
}

#[tonic::async_trait]
impl SocialSecurityAdapter for SocialSecurity {
    async fn publish_enrollment(
        &self,
        request: Request<PublishEnrollmentRequest>,
    ) -> Result<Response<PublishAck>, Status> {
        self.0
            .upsert_rpc(AGENCY, request, |r| {
                (r.meta, r.record.map(Payload::Enrollment))
            })
            .await
    }

    async fn publish_contribution_period(
        &self,
        request: Request<PublishContributionPeriodRequest>,
    ) -> Result<Response<PublishAck>, Status> {
        self.0
            .upsert_rpc(AGENCY, request, |r| {
                (r.meta, r.record.map(Payload::ContributionPeriod))
            })
            .await
    }

    async fn publish_transfer_out_certificate(
        &self,
        request: Request<PublishTransferOutCertificateRequest>,
    ) -> Result<Response<PublishAck>, Status> {
        self.0
            .upsert_rpc(AGENCY, request, |r| {
                (r.meta, r.record.map(Payload::TransferOutCertificate))
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
        request: Request<PublishSocialSecurityBatchRequest>,
    ) -> Result<Response<PublishBatchResponse>, Status> {
        self.0
            .batch_rpc(AGENCY, request, |r| r.items, SocialSecurity::batch_item)
            .await
    }
}
