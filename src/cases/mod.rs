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
pub mod objections;
pub mod plan;
mod polled;
pub mod relist;
pub mod service;
pub mod store;
pub mod tasks;
mod validate;
