//! The housing bureau's adapter (real-estate titles, sale contracts).

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{Item, PublishPath};
use crate::grpc::deadline;
use crate::proto::housing_adapter_server::HousingAdapter;
use crate::proto::housing_batch_item::Record;
use crate::proto::{
    Agency, DeleteRecordRequest, PublishAck, PublishBatchResponse, PublishHousingBatchRequest,
    PublishPropertyTitleRequest, PublishSaleContractRequest, record_event::Payload,
};

const AGENCY: Agency = Agency::Housing;

/// Serves `govlink.v1.HousingAdapter`.
pub struct Housing(pub Arc<PublishPath>);

#[tonic::async_trait]
impl HousingAdapter for Housing {
    async fn publish_property_title(
        &self,
        request: Request<PublishPropertyTitleRequest>,
    ) -> Result<Response<PublishAck>, Status> {
        let deadline = deadline(&request, self.0.max_wait());
        let r = request.into_inner();
        let item = Item::upsert(r.meta, r.record.map(Payload::PropertyTitle));
        self.0
            .publish(AGENCY, item, deadline)
            .await
            .map(Response::new)
    }

    async fn publish_sale_contract(
        &self,
        request: Request<PublishSaleContractRequest>,
    ) -> Result<Response<PublishAck>, Status> {
        let deadline = deadline(&request, self.0.max_wait());
        let r = request.into_inner();
        let item = Item::upsert(r.meta, r.record.map(Payload::SaleContract));
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
        request: Request<PublishHousingBatchRequest>,
    ) -> Result<Response<PublishBatchResponse>, Status> {
        let deadline = deadline(&request, self.0.max_wait());
        let items = request
            .into_inner()
            .items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                let (body, field) = match item.record {
                    Some(Record::PropertyTitle(r)) => {
                        (Ok(Payload::PropertyTitle(r)), "property_title")
                    }
                    Some(Record::SaleContract(r)) => {
                        (Ok(Payload::SaleContract(r)), "sale_contract")
                    }
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
