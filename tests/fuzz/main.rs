//! Fuzzing the wire boundary, without a broker or Redis: arbitrary bytes decoded as every
//! request message of the contract, and generated requests with hostile field contents
//! (overlong and control-character strings, huge repeated fields, unknown enum values,
//! impossible dates and instants), through the same checks the services run. No input
//! may panic, every refusal names a field of the request, and what an adapter accepts
//! the materializer accepts too.
//!
//! A few hundred cases per property run with the other tests; for a long run:
//! `PROPTEST_CASES=100000 cargo test --release --test fuzz`.

// The harness is `pub` for the sibling modules of this one crate.
#![allow(unreachable_pub)]

mod bytes;
mod checks;
mod fields;
mod regressions;
mod strategies;
mod structured;
