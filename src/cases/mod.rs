//! The case engine: transfers and handovers carried to completion (plans, steps,
//! deadlines).

pub mod calendar;
pub mod case;
pub mod plan;
