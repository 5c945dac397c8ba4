//! The case engine: transfers and handovers carried to completion (plans, steps,
//! deadlines).

pub mod admission;
mod audit;
pub mod bridge;
pub mod calendar;
pub mod case;
mod commands;
pub mod deadlines;
pub mod engine;
mod listing;
pub mod plan;
mod polled;
pub mod relist;
pub mod service;
pub mod store;
pub mod tasks;
mod validate;
