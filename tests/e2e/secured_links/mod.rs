//! govlink over secured links to real components: Redis over TLS as an ACL user, Kafka
//! over SASL (SCRAM) and TLS with a client certificate, and a govlink process whose output,
//! metrics and status page never show a secret while it uses them.

mod fixtures;
mod kafka_sasl;
mod redis_tls;
mod secrets;

use std::time::Duration;

use govlink::proto::public_security_adapter_client::PublicSecurityAdapterClient;
use govlink::proto::{self, GetRecordRequest};
use tonic::transport::Channel;

use crate::helpers::*;

/// Publishes household registration `id` through the public-security adapter on
/// `channel`, then reads it back through a lookup that waits for it: the record went
/// through the broker, the materializer and the store.
pub async fn round_trip(channel: &Channel, id: &str) {
    let ack = PublicSecurityAdapterClient::new(channel.clone())
        .publish_household_registration(proto::PublishHouseholdRegistrationRequest {
            meta: meta(id, 1),
            record: Some(household(&alice(), proto::HouseholdStatus::Registered)),
        })
        .await
        .expect("the publish is acknowledged")
        .into_inner();
    let mut request = tonic::Request::new(GetRecordRequest {
        record_key: format!("public-security/household_registration/{id}"),
        min_positions: vec![position(&ack)],
    });
    request.set_timeout(Duration::from_secs(30));
    let record = resolver_as(channel.clone(), "public-security/records", None)
        .get_record(request)
        .await
        .expect("the lookup finds the record")
        .into_inner()
        .record
        .expect("a record");
    assert_eq!(record.version, 1);
}
