//! The case engine: transfers and handovers carried to completion (plans, steps,
//! deadlines).

pub mod admission;
mod audit;
pub mod bridge;
pub mod calendar;
mod calls;
pub mod case;
mod commands;
pub mod deadlines;
pub mod engine;
mod error;
mod grants;
mod listing;
pub mod plan;
mod polled;
pub mod relist;
pub mod service;
pub mod store;
pub mod tasks;
mod validate;

use crate::kafka::{TopicSpec, Topics};
use crate::records::AGENCIES;

/// The case topics, kept forever: commands (the engine's input), events (the truth the
/// views are rebuilt from) and each agency's tasks.
pub fn topic_specs(topics: &Topics, partitions: i32, replication: i32) -> Vec<TopicSpec> {
    let mut specs = vec![
        TopicSpec::durable(topics.case_commands(), partitions, replication, -1),
        TopicSpec::durable(topics.cases(), partitions, replication, -1),
    ];
    specs
        .extend(AGENCIES.map(|a| TopicSpec::durable(topics.tasks(a), partitions, replication, -1)));
    specs
}
