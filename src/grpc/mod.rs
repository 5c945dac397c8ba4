//! What every gRPC service of govlink shares: the server and its message-size limit, call
//! deadlines and the mapping of field violations to `INVALID_ARGUMENT` with rich
//! `BadRequest` details.

use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::codegen::http::Request as HttpRequest;
use tonic::service::Routes;
use tonic::transport::Server;
use tonic::{Code, Request, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::identity::Requester;
use crate::limits::{RateLimiter, exhausted};
use crate::proto::Agency;
use crate::records::Violations;
use crate::telemetry::events::{Limit, Limited};
use crate::telemetry::metrics::Telemetry;
use crate::tls::{PeerInfo, ServerTls};

pub mod identify;
mod layers;
pub mod polled;

pub use identify::{RequesterSource, caller_of};

use layers::{Authenticate, LimitMessages};

/// The largest request message a govlink server decodes: tonic's default decoding limit,
/// which every service keeps. [`serve`] refuses a larger one with `RESOURCE_EXHAUSTED`
/// before tonic would (tonic says `OUT_OF_RANGE`, which gRPC's status table does not
/// use for this).
pub const MAX_MESSAGE_BYTES: usize = 4 << 20;
/// The bytes of field violations an `INVALID_ARGUMENT` carries in its details. Details
/// and message travel in HTTP/2 headers, the details base64-encoded and holding the
/// message once more; with these two budgets the headers stay under about 5.5 KiB, well
/// below the 8-16 KiB header lists clients accept.
const DETAILS_BUDGET: usize = 3 * 1024;
/// The bytes of an `INVALID_ARGUMENT` message, as percent-encoded in `grpc-message`.
const MESSAGE_BUDGET: usize = 512;

/// The part of a client's timeout kept back so our answer (say `UNAVAILABLE`) reaches it
/// before its own timer fires: at most this, and at most a tenth of the timeout.
const ANSWER_MARGIN: Duration = Duration::from_millis(100);

/// How a server serves, beyond its routes.
#[derive(Default)]
pub struct ServeOptions {
    /// Mutual TLS; plaintext without (`dev`, `demo`, tests).
    pub tls: Option<Arc<ServerTls>>,
    /// Concurrent streams (calls) per HTTP/2 connection; 0 for h2's default.
    pub max_concurrent_streams: u32,
    /// Where refused oversized messages are counted.
    pub telemetry: Telemetry,
}

/// Serves `routes` on `listener` until `shutdown` resolves; then stops accepting and lets
/// in-flight calls finish. A request message over [`MAX_MESSAGE_BYTES`] gets
/// `RESOURCE_EXHAUSTED`, in unary and streaming calls alike. With `tls`, connections are
/// TLS 1.3 and every call must come with a valid client certificate: the verified
/// [`crate::tls::Peer`] is in its extensions; without, calls are refused `UNAUTHENTICATED`.
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let ServeOptions {
        tls,
        max_concurrent_streams,
        telemetry,
    } = options;
    let service = LimitMessages {
        inner: routes.prepare(),
        limit: MAX_MESSAGE_BYTES,
        telemetry: telemetry.clone(),
    };
    // HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS: a client opening more waits for one to end.
    let server = Server::builder()
        .max_concurrent_streams((max_concurrent_streams > 0).then_some(max_concurrent_streams));
    match tls {
        Some(tls) => {
            let traced = Arc::clone(&tls);
            let server = server.trace_fn(move |request| verified_rpc_span(&traced, request));
            let incoming = crate::tls::incoming(listener, Arc::clone(&tls));
            let service = Authenticate {
                inner: service,
                tls,
                telemetry,
            };
            server
                .serve_with_incoming_shutdown(service, incoming, shutdown)
                .await
        }
        None => {
            let server = server.trace_fn(rpc_span);
            // Answers go out at once: with Nagle's algorithm, a reply of several frames
            // waits for the client's delayed ACK (some 40 ms) before its last frame is sent.
            let incoming = TcpListenerStream::new(listener).map(|conn| {
                if let Ok(stream) = &conn
                    && let Err(e) = stream.set_nodelay(true)
                {
                    tracing::debug!(error = %e, "cannot disable Nagle's algorithm on a connection");
                }
                conn
            });
            server
                .serve_with_incoming_shutdown(service, incoming, shutdown)
                .await
        }
    }
}

/// The span every call runs in: the service and method, the agency (the adapter's, or
/// the requester's) and the requester (`agency/service`) when the call names one. Never
/// anything about the persons a call is about. Without TLS the requester is the one the
/// insecure header claims.
fn rpc_span(request: &HttpRequest<()>) -> tracing::Span {
    let requester = request
        .headers()
        .get(crate::identity::REQUESTER_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    span(request, requester)
}

/// The span of a call over TLS: the requester its verified certificate names (the
/// verdict is cached on the connection, so [`Authenticate`] finds it there).
fn verified_rpc_span(tls: &ServerTls, request: &HttpRequest<()>) -> tracing::Span {
    let requester = request
        .extensions()
        .get::<PeerInfo>()
        .and_then(|info| info.authenticate(tls).ok())
        .map(|peer| peer.requester.to_string())
        .unwrap_or_default();
    span(request, &requester)
}

fn span(request: &HttpRequest<()>, requester: &str) -> tracing::Span {
    let path = request.uri().path().trim_start_matches('/');
    let (service, method) = path.split_once('/').unwrap_or((path, ""));
    let agency = match adapter_agency(service) {
        Some(agency) => crate::records::agency_slug(agency),
        None => requester.split('/').next().unwrap_or(""),
    };
    tracing::info_span!("rpc", service, method, agency, requester)
}

/// The method a call is for, `package.Service/Method`, in every request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallMethod(pub String);

impl<T> From<&Request<T>> for CallMethod {
    fn from(request: &Request<T>) -> CallMethod {
        request
            .extensions()
            .get::<CallMethod>()
            .cloned()
            .unwrap_or(CallMethod(String::new()))
    }
}

/// The agency whose adapter `service` (`package.Service`) is.
fn adapter_agency(service: &str) -> Option<Agency> {
    match service {
        "govlink.v1.SocialSecurityAdapter" => Some(Agency::SocialSecurity),
        "govlink.v1.PublicSecurityAdapter" => Some(Agency::PublicSecurity),
        "govlink.v1.HousingAdapter" => Some(Agency::Housing),
        "govlink.v1.ProvidentFundAdapter" => Some(Agency::ProvidentFund),
        _ => None,
    }
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

/// Takes one call from `requester`'s bucket in `rate` (the `lookup_rate_per_requester`
/// setting: lookups, checks, case and task calls): `RESOURCE_EXHAUSTED` with a
/// `RetryInfo`, counted, while it is used up. Checked once the caller is known and
/// before any other work, so a refused call reads, writes and audits nothing.
pub fn admit_requester(
    rate: &RateLimiter<Requester>,
    requester: &Requester,
    telemetry: &Telemetry,
    calls: &str,
) -> Result<(), Status> {
    rate.check(requester, 1).map_err(|wait| {
        telemetry.emit(Limited {
            limit: Limit::LookupRate,
            agency: requester.agency,
        });
        let limit = rate.rate();
        exhausted(
            format!(
                "{calls} rate limit of requester {requester} exceeded ({} calls per second, \
                 bursts of {}): not answered",
                limit.per_second(),
                limit.burst()
            ),
            wait,
        )
    })
}

/// [`invalid_argument`], counted in `telemetry` as a field-length refusal of `agency`
/// when a field was over the length the contract allows.
pub fn refuse_fields(violations: &Violations, telemetry: &Telemetry, agency: Agency) -> Status {
    if violations.too_long() {
        telemetry.emit(crate::telemetry::events::Limited {
            limit: crate::telemetry::events::Limit::FieldLength,
            agency,
        });
    }
    invalid_argument(violations)
}

/// `INVALID_ARGUMENT` naming the broken rules as field violations, as many as fit in
/// HTTP/2 headers; the message names the first few and how many more there are.
pub fn invalid_argument(violations: &Violations) -> Status {
    let mut details = ErrorDetails::new();
    let mut details_size = 0;
    for v in violations.iter() {
        // Two length-delimited strings in a FieldViolation in the BadRequest: a few bytes
        // of tags and lengths each.
        details_size += v.field.len() + v.description.len() + 8;
        if details_size > DETAILS_BUDGET {
            break;
        }
        details.add_bad_request_violation(v.field.clone(), v.description.clone());
    }
    // Room for "; and at least NNNNNNNNNN more".
    let room = MESSAGE_BUDGET - 32;
    let mut message = String::from("invalid request: ");
    let mut shown = 0;
    for v in violations.iter() {
        let item = if shown == 0 {
            v.to_string()
        } else {
            format!("; {v}")
        };
        if grpc_message_len(&message) + grpc_message_len(&item) > room {
            break;
        }
        message.push_str(&item);
        shown += 1;
    }
    let more = violations.len() - shown;
    if more > 0 {
        let sep = if shown == 0 { "" } else { "; " };
        // Once full, validation may have stopped early: the count is a lower bound.
        let at_least = if violations.is_full() {
            "at least "
        } else {
            ""
        };
        let _ = write!(message, "{sep}and {at_least}{more} more");
    }
    Status::with_error_details(Code::InvalidArgument, message, details)
}

/// The length of `text` as a `grpc-message` header: bytes outside printable ASCII, and
/// `%`, are percent-encoded (three bytes each).
fn grpc_message_len(text: &str) -> usize {
    text.bytes()
        .map(|b| {
            if (0x20..=0x7e).contains(&b) && b != b'%' {
                1
            } else {
                3
            }
        })
        .sum()
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

    /// The HTTP/2 size of a header list: name, value and 32 bytes per entry (RFC 9113).
    fn header_list_size(status: Status) -> usize {
        let response = status.into_http::<()>();
        response
            .headers()
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 32)
            .sum()
    }

    #[test]
    fn invalid_argument_fits_in_http2_headers_however_many_violations() {
        let mut violations = Violations::default();
        for i in 0..10_000 {
            violations.add(
                format!("items[{i}].record.encumbrances[63].holder_credit_code"),
                format!(
                    "not a unified social credit code: registration authority code (position \
                     1) must be one of 1 5 9 Y, found '名' {}",
                    "%".repeat(20)
                ),
            );
        }
        let status = invalid_argument(&violations);
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status.message().starts_with(
                "invalid request: items[0].record.encumbrances[63].holder_credit_code: not a"
            ),
            "{}",
            status.message()
        );
        assert!(status.message().ends_with(" more"), "{}", status.message());
        let shown = status.message().matches("holder_credit_code").count();
        let more = format!("and at least {} more", 10_000 - shown);
        assert!(status.message().contains(&more), "{}", status.message());
        let details = status.get_details_bad_request().unwrap().field_violations;
        assert!(details.len() >= 10, "{}", details.len());
        assert_eq!(
            details[0].field,
            "items[0].record.encumbrances[63].holder_credit_code"
        );
        let size = header_list_size(status);
        assert!(size < 8 * 1024, "{size} bytes of headers");
    }

    #[test]
    fn invalid_argument_names_every_violation_when_few() {
        let mut violations = Violations::default();
        violations.add("record.name", "is required");
        violations.add("record.sex", "is required (UNSPECIFIED is not a value)");
        let status = invalid_argument(&violations);
        assert_eq!(
            status.message(),
            "invalid request: record.name: is required; record.sex: is required (UNSPECIFIED \
             is not a value)"
        );
        let details = status.get_details_bad_request().unwrap().field_violations;
        assert_eq!(details.len(), 2);
        assert_eq!(details[1].field, "record.sex");
    }
}
