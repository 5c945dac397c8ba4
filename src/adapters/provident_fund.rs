//! The housing provident fund centre's adapter (accounts, loans).

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{BatchOneof, PublishPath};
use crate::proto::provident_fund_adapter_server::ProvidentFundAdapter;
use crate::proto::provident_fund_batch_item::Record;
use crate::proto::{
    Agency, DeleteRecordRequest, ProvidentFundBatchItem, PublishAccountRequest, PublishAck,
    PublishBatchResponse, PublishLoanRequest, PublishMeta, PublishProvidentFundBatchRequest,
    record_event::Payload,
};

const AGENCY: Agency = Agency::ProvidentFund;

/// Serves `govlink.v1.ProvidentFundAdapter`.
pub struct ProvidentFund(pub Arc<PublishPath>);

impl ProvidentFund {
    /// One item of a `PublishBatch` request taken apart into its meta and its oneof, as
    /// the adapter validates it.
    pub fn batch_item(item: ProvidentFundBatchItem) -> (Option<PublishMeta>, BatchOneof) {
        let record = item.record.map(|record| match record {
            Record::Account(r) => (Ok(Payload::ProvidentFundAccount(r)), "account"),
            Record::Loan(r) => (Ok(Payload::ProvidentFundLoan(r)), "loan"),
            Record::DeletedRecordType(t) => (Err(t), "deleted_record_type"),
        });
        (item.meta, record)
    }
}

#[tonic::async_trait]
impl ProvidentFundAdapter for ProvidentFund {
    async fn publish_account(
        &self,
        request: Request<PublishAccountRequest>,
    ) -> Result<Response<PublishAck>, Status> {
        self.0
            .upsert_rpc(AGENCY, request, |r| {
                (r.meta, r.record.map(Payload::ProvidentFundAccount))
            })
            .await
    }

    async fn publish_loan(
        &self,
        request: Request<PublishLoanRequest>,
    ) -> Result<Response<PublishAck>, Status> {
        self.0
            .upsert_rpc(AGENCY, request, |r| {
                (r.meta, r.record.map(Payload::ProvidentFundLoan))
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
        request: Request<PublishProvidentFundBatchRequest>,
    ) -> Result<Response<PublishBatchResponse>, Status> {
        self.0
            .batch_rpc(AGENCY, request, |r| r.items, ProvidentFund::batch_item)
            .await
    }
}
