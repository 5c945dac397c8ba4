//! What every gRPC service of govlink shares: the server, call deadlines and the mapping of field
//! violations to `INVALID_ARGUMENT` with rich `BadRequest` details.

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::Routes;
use tonic::transport::Server;
use tonic::{Code, Request, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::records::Violations;

/// The part of a client's timeout kept back so our answer (say `UNAVAILABLE`) reaches it
/// before its own timer fires: at most this, and at most a tenth of the timeout.
const ANSWER_MARGIN: Duration = Duration::from_millis(100);

/// Serves `routes` on `listener` until `shutdown` resolves; then stops accepting and lets
/// in-flight calls finish.
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    Server::builder()
        .add_routes(routes)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await
}

/// The instant a call must be answered by: shortly before the client's `grpc-timeout`
/// when it sent one, capped at `max`; otherwise `max`.
pub fn deadline<T>(request: &Request<T>, max: Duration) -> Instant {
    let timeout = request
        .metadata()
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_grpc_timeout)
        .map_or(max, |t| t.min(max));
    Instant::now() + timeout.saturating_sub(ANSWER_MARGIN.min(timeout / 10))
}

/// Parses the `grpc-timeout` header: up to 8 digits and a unit (H M S m u n).
fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// `INVALID_ARGUMENT` naming every broken rule as a field violation.
pub fn invalid_argument(violations: &Violations) -> Status {
    let mut details = ErrorDetails::new();
    for v in violations.iter() {
        details.add_bad_request_violation(v.field.clone(), v.description.clone());
    }
    Status::with_error_details(
        Code::InvalidArgument,
        format!("invalid request: {violations}"),
        details,
    )
}

/// `INVALID_ARGUMENT` for one broken rule.
pub fn invalid_field(field: &str, description: &str) -> Status {
    let mut violations = Violations::default();
    violations.add(field, description);
    invalid_argument(&violations)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_units_parse_and_garbage_does_not() {
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("m"), None);
        assert_eq!(parse_grpc_timeout("123456789m"), None);
        assert_eq!(parse_grpc_timeout("12x"), None);
    }
}
