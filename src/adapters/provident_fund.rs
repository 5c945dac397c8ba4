//! The housing provident fund centre's adapter (accounts, loans).

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{Item, PublishPath};
use crate::grpc::deadline;
use crate::proto::provident_fund_adapter_server::ProvidentFundAdapter;
use crate::proto::provident_fund_batch_item::Record;
use crate::proto::{
    Agency, DeleteRecordRequest, PublishAccountRequest, PublishAck, PublishBatchResponse,
    PublishLoanRequest, PublishProvidentFundBatchRequest, record_event::Payload,
};

const AGENCY: Agency = Agency::ProvidentFund;

/// Serves `govlink.v1.ProvidentFundAdapter`.
pub struct ProvidentFund(pub Arc<PublishPath>);

#[tonic::async_trait]
impl ProvidentFundAdapter for ProvidentFund {
    async fn publish_account(
        &self,
        request: Request<PublishAccountRequest>,
    ) -> Result<Response<PublishAck>, Status> {
        let deadline = deadline(&request, self.0.max_wait());
        let r = request.into_inner();
        let item = Item::upsert(r.meta, r.record.map(Payload::ProvidentFundAccount));
        self.0
            .publish(AGENCY, item, deadline)
            .await
            .map(Response::new)
    }

    async fn publish_loan(
        &self,
        request: Request<PublishLoanRequest>,
    ) -> Result<Response<PublishAck>, Status> {
        let deadline = deadline(&request, self.0.max_wait());
        let r = request.into_inner();
        let item = Item::upsert(r.meta, r.record.map(Payload::ProvidentFundLoan));
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
        request: Request<PublishProvidentFundBatchRequest>,
    ) -> Result<Response<PublishBatchResponse>, Status> {
        let deadline = deadline(&request, self.0.max_wait());
        let items = request
            .into_inner()
            .items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                let (body, field) = match item.record {
                    Some(Record::Account(r)) => (Ok(Payload::ProvidentFundAccount(r)), "account"),
                    Some(Record::Loan(r)) => (Ok(Payload::ProvidentFundLoan(r)), "loan"),
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
