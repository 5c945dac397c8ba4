//! The operator tools, each a command of `govlink` run beside the services: the topics
//! as an operator looks at them (`topics list|tail|lag`, with the reading and decoding
//! they share), the dead-letter queue (`dlq list|replay`), and the store rebuilds
//! (`rebuild`, `rebuild --cases`).

pub mod decode;
pub mod dlq;
pub mod read;
pub mod rebuild;
pub mod rebuild_cases;
pub mod topics;
