//! Integration tests: govlink's servers in-process on port 0, against a real
//! Kafka-compatible broker and a real Redis whose addresses `scripts/test.sh` exports
//! (`GOVLINK_TEST_KAFKA`, `GOVLINK_TEST_REDIS`). Every test uses its own topic prefix,
//! consumer group and Redis key prefix.

// The helpers are `pub` for the sibling test modules of this one crate.
#![allow(unreachable_pub)]

mod access_watch;
mod accesses;
mod admin;
mod audit;
mod bad_input;
mod bench;
mod case_access;
mod case_bridge;
mod case_correctness;
mod case_costs;
mod case_store_contract;
mod cases;
mod certificates;
mod configuration;
mod demo;
mod dlq;
mod faults;
mod helpers;
mod integrations;
mod lifecycle;
mod limits;
mod loans;
mod lookups;
mod materialize;
mod objections;
mod ops_tools;
mod publish;
mod publish_faults;
mod rebuild;
mod roles;
mod scale_out;
mod secured_links;
mod security;
mod store_contract;
mod store_reads;
mod topics;
mod unreachable;
