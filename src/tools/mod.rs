//! The operator tools, each a command of `govlink` run beside the services: the topics
//! as an operator looks at them (`topics list|tail|lag`, with the reading and decoding
//! they share), the dead-letter queue (`dlq list|replay`), and the store rebuilds
//! (`rebuild`, `rebuild --cases`), and `audit verify`'s reading and printing of the trail
//! (`audit_verify`; the checking is `audit::verify`'s).

pub mod audit_verify;
pub mod decode;
pub mod dlq;
pub mod read;
pub mod rebuild;
pub mod rebuild_cases;
pub mod topics;
