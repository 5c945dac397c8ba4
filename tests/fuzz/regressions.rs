//! Inputs that once cost unbounded work or were refused without a field, kept as tests.

use govlink::cases::service::validate_open_case;
use govlink::proto::{self, case_params::Kind};

use super::checks::refused;
use super::fields::UNIT;

/// A property transfer case naming thousands of sellers and buyers was checked pair by
/// pair (millions of comparisons per call); now the parties are bounded like a sale
/// contract's and the pairs are not compared beyond the bound.
#[test]
fn a_case_naming_thousands_of_parties_is_refused_on_the_count() {
    let id = "11010519800312001X".to_owned();
    let request = proto::OpenCaseRequest {
        request_id: "r-1".into(),
        purpose: "property-transfer".into(),
        params: Some(proto::CaseParams {
            kind: Some(Kind::PropertyTransfer(proto::PropertyTransferParams {
                unit_number: UNIT.into(),
                contract_number: "WQ-1".into(),
                seller_ids: vec![id.clone(); 5_000],
                buyer_ids: vec![id; 5_000],
            })),
        }),
        min_positions: Vec::new(),
    };
    let v = validate_open_case(&request);
    refused(&v, &["params"]);
    let fields: Vec<(&str, &str)> = v
        .iter()
        .map(|v| (v.field.as_str(), v.description.as_str()))
        .collect();
    assert_eq!(
        fields,
        [
            (
                "params.property_transfer.seller_ids",
                "must have at most 64 entries, not 5000"
            ),
            (
                "params.property_transfer.buyer_ids",
                "must have at most 64 entries, not 5000"
            ),
        ]
    );
    assert!(v.too_long());
}
