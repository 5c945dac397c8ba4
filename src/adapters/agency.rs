//! What every agency's adapter is, written once: [`agency_adapter!`] makes an agency's
//! gRPC service out of the table of its record types, so an agency's file names only what
//! is its own.
//!
//! A macro, not a generic type: each agency's service is its own generated trait whose
//! methods are named after that agency's records (`publish_property_title`, …), and only a
//! macro can write methods of given names. Everything the methods do is the shared
//! [`PublishPath`](super::PublishPath)'s.

/// An agency's adapter: a service struct over the shared publish path, its
/// `batch_item` (how the adapter reads one item of its `PublishBatch`), and its gRPC
/// service, whose RPCs all go through the publish path.
///
/// ```text
/// agency_adapter! {
///     /// Serves `govlink.v1.HousingAdapter`.
///     Housing serves HousingAdapter for Agency::Housing;
///     batch PublishHousingBatchRequest of HousingBatchItem, oneof Record;
///     // rpc(request): oneof variant => payload variant, "oneof field"
///     publish_property_title(PublishPropertyTitleRequest):
///         PropertyTitle => PropertyTitle, "property_title";
/// }
/// ```
///
/// The request, item and oneof types are named as the agency's file imports them. Every
/// agency's service also has `DeleteRecord` and `PublishBatch`, and every batch oneof a
/// `deleted_record_type`.
macro_rules! agency_adapter {
    (
        $(#[$doc:meta])*
        $name:ident serves $service:ident for $agency:expr;
        batch $batch_request:ident of $batch_item:ident, oneof $oneof:ident;
        $(
            $rpc:ident($request:ident): $variant:ident => $payload:ident, $field:literal;
        )+
    ) => {
        $(#[$doc])*
        pub struct $name(pub ::std::sync::Arc<$crate::adapters::PublishPath>);

        impl $name {
            /// One item of a `PublishBatch` request taken apart into its meta and its oneof,
            /// as the adapter validates it.
            pub fn batch_item(
                item: $batch_item,
            ) -> (
                Option<$crate::proto::PublishMeta>,
                $crate::adapters::BatchOneof,
            ) {
                use $crate::proto::record_event::Payload;
                let record = item.record.map(|record| match record {
                    $( $oneof::$variant(r) => (Ok(Payload::$payload(r)), $field), )+
                    $oneof::DeletedRecordType(t) => (Err(t), "deleted_record_type"),
                });
                (item.meta, record)
            }
        }

        #[tonic::async_trait]
        impl $service for $name {
            $(
                async fn $rpc(
                    &self,
                    request: ::tonic::Request<$request>,
                ) -> Result<::tonic::Response<$crate::proto::PublishAck>, ::tonic::Status> {
                    use $crate::proto::record_event::Payload;
                    self.0
                        .item_rpc($agency, request, |r| {
                            $crate::adapters::Item::upsert(r.meta, r.record.map(Payload::$payload))
                        })
                        .await
                }
            )+

            async fn delete_record(
                &self,
                request: ::tonic::Request<$crate::proto::DeleteRecordRequest>,
            ) -> Result<::tonic::Response<$crate::proto::PublishAck>, ::tonic::Status> {
                self.0
                    .item_rpc($agency, request, |r| {
                        $crate::adapters::Item::delete(r.meta, r.record_type)
                    })
                    .await
            }

            async fn publish_batch(
                &self,
                request: ::tonic::Request<$batch_request>,
            ) -> Result<::tonic::Response<$crate::proto::PublishBatchResponse>, ::tonic::Status>
            {
                self.0
                    .batch_rpc($agency, request, |r| r.items, $name::batch_item)
                    .await
            }
        }
    };
}

pub(super) use agency_adapter;
