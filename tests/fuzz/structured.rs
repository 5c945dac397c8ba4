//! Generated requests of every service through their checks.

use proptest::prelude::*;

use super::checks::Checks;
use super::strategies::{adapter_request, cases_request, resolver_request};

proptest! {
    #[test]
    fn adapter_requests_are_published_or_refused_by_field(request in adapter_request()) {
        Checks::new().adapter(request);
    }

    #[test]
    fn resolver_requests_are_parsed_or_refused_by_field(request in resolver_request()) {
        Checks::new().resolver(request);
    }

    #[test]
    fn cases_and_tasks_requests_are_accepted_or_refused_by_field(request in cases_request()) {
        Checks::new().cases(request);
    }
}
