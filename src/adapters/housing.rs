//! The housing bureau's adapter (real-estate titles, sale contracts).

use super::agency::agency_adapter;
use crate::proto::housing_adapter_server::HousingAdapter;
use crate::proto::housing_batch_item::Record;
use crate::proto::{
    Agency, HousingBatchItem, PublishHousingBatchRequest, PublishPropertyTitleRequest,
    PublishSaleContractRequest,
};

agency_adapter! {
    /// Serves `govlink.v1.HousingAdapter`.
    Housing serves HousingAdapter for Agency::Housing;
    batch PublishHousingBatchRequest of HousingBatchItem, oneof Record;
    publish_property_title(PublishPropertyTitleRequest):
        PropertyTitle => PropertyTitle, "property_title";
    publish_sale_contract(PublishSaleContractRequest):
        SaleContract => SaleContract, "sale_contract";
}
