//! Validated identifiers and civil dates: parsed once at the wire boundary, trusted everywhere after.

pub mod credit_code;
pub mod date;
pub mod division;
pub mod resident_id;
pub mod unit_number;

pub use credit_code::{CreditCode, CreditCodeError};
pub use date::{CivilDate, DateError, YearMonth};
pub use division::{DivisionCode, DivisionCodeError};
pub use resident_id::{ResidentId, ResidentIdError, Sex};
pub use unit_number::{UnitNumber, UnitNumberError};
