//! The public-security bureau's adapter (identity, household registration).

use super::agency::agency_adapter;
use crate::proto::public_security_adapter_server::PublicSecurityAdapter;
use crate::proto::public_security_batch_item::Record;
use crate::proto::{
    Agency, PublicSecurityBatchItem, PublishHouseholdRegistrationRequest, PublishIdentityRequest,
    PublishPublicSecurityBatchRequest,
};

agency_adapter! {
    /// Serves `govlink.v1.PublicSecurityAdapter`.
    PublicSecurity serves PublicSecurityAdapter for Agency::PublicSecurity;
    batch PublishPublicSecurityBatchRequest of PublicSecurityBatchItem, oneof Record;
    publish_identity(PublishIdentityRequest): Identity => Identity, "identity";
    publish_household_registration(PublishHouseholdRegistrationRequest):
        HouseholdRegistration => HouseholdRegistration, "household_registration";
}
