//! The housing provident fund centre's adapter (accounts, loans).

use super::agency::agency_adapter;
use crate::proto::provident_fund_adapter_server::ProvidentFundAdapter;
use crate::proto::provident_fund_batch_item::Record;
use crate::proto::{
    Agency, ProvidentFundBatchItem, PublishAccountRequest, PublishLoanRequest,
    PublishProvidentFundBatchRequest,
};

agency_adapter! {
    /// Serves `govlink.v1.ProvidentFundAdapter`.
    ProvidentFund serves ProvidentFundAdapter for Agency::ProvidentFund;
    batch PublishProvidentFundBatchRequest of ProvidentFundBatchItem, oneof Record;
    publish_account(PublishAccountRequest): Account => ProvidentFundAccount, "account";
    publish_loan(PublishLoanRequest): Loan => ProvidentFundLoan, "loan";
}
