//! The social-security bureau's adapter.

use super::agency::agency_adapter;
use crate::proto::social_security_adapter_server::SocialSecurityAdapter;
use crate::proto::social_security_batch_item::Record;
use crate::proto::{
    Agency, PublishContributionPeriodRequest, PublishEnrollmentRequest,
    PublishSocialSecurityBatchRequest, PublishTransferOutCertificateRequest,
    SocialSecurityBatchItem,
};

agency_adapter! {
    /// Serves `govlink.v1.SocialSecurityAdapter`.
    SocialSecurity serves SocialSecurityAdapter for Agency::SocialSecurity;
    batch PublishSocialSecurityBatchRequest of SocialSecurityBatchItem, oneof Record;
    publish_enrollment(PublishEnrollmentRequest): Enrollment => Enrollment, "enrollment";
    publish_contribution_period(PublishContributionPeriodRequest):
        ContributionPeriod => ContributionPeriod, "contribution_period";
    publish_transfer_out_certificate(PublishTransferOutCertificateRequest):
        TransferOutCertificate => TransferOutCertificate, "transfer_out_certificate";
}
