//! The housing bureau's adapter (real-estate titles, sale contracts).

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{BatchOneof, PublishPath};
use crate::proto::housing_adapter_server::HousingAdapter;
use crate::proto::housing_batch_item::Record;
use crate::proto::{
    Agency, DeleteRecordRequest, HousingBatchItem, PublishAck, PublishBatchResponse,
    PublishHousingBatchRequest, PublishMeta, PublishPropertyTitleRequest,
    PublishSaleContractRequest, record_event::Payload,
};

const AGENCY: Agency = Agency::Housing;

/// Serves `govlink.v1.HousingAdapter`.
pub struct Housing(pub Arc<PublishPath>);

impl Housing {
    /// One item of a `PublishBatch` request taken apart into its meta and its oneof, as
    /// the adapter validates it.
    pub fn batch_item(item: HousingBatchItem) -> (Option<PublishMeta>, BatchOneof) {
        let record = item.record.map(|record| match record {
            Record::PropertyTitle(r) => (Ok(Payload::PropertyTitle(r)), "property_title"),
            Record::SaleContract(r) => (Ok(Payload::SaleContract(r)), "sale_contract"),
            Record::DeletedRecordType(t) => (Err(t), "deleted_record_type"),
        });
        (item.meta, record)
    }
}

#[tonic::async_trait]
impl HousingAdapter for Housing {
    async fn publish_property_title(
        &self,
        request: Request<PublishPropertyTitleRequest>,
    ) -> Result<Response<PublishAck>, Status> {
        self.0
            .upsert_rpc(AGENCY, request, |r| {
                (r.meta, r.record.map(Payload::PropertyTitle))
            })
            .await
    }

    async fn publish_sale_contract(
        &self,
        request: Request<PublishSaleContractRequest>,
    ) -> Result<Response<PublishAck>, Status> {
        self.0
            .upsert_rpc(AGENCY, request, |r| {
                (r.meta, r.record.map(Payload::SaleContract))
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
        request: Request<PublishHousingBatchRequest>,
    ) -> Result<Response<PublishBatchResponse>, Status> {
        self.0
            .batch_rpc(AGENCY, request, |r| r.items, Housing::batch_item)
            .await
    }
}
