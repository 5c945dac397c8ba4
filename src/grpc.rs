//! What every gRPC service of govlink shares: the server and its message-size limit, call
//! deadlines and the mapping of field violations to `INVALID_ARGUMENT` with rich
//! `BadRequest` details.

use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::body::Body;
use tonic::codegen::Service;
use tonic::codegen::http::{Request as HttpRequest, Response as HttpResponse};
use tonic::service::Routes;
use tonic::transport::Server;
use tonic::{Code, Request, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::ops::events::{Limit, Limited};
use crate::ops::metrics::Telemetry;
use crate::proto::Agency;
use crate::records::Violations;
use crate::tls::{PeerInfo, Refusal, ServerTls};

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
/// [`Peer`] is in its extensions; without, calls are refused `UNAUTHENTICATED`.
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
        telemetry,
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
        .get(crate::resolver::query::REQUESTER_HEADER)
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

/// Wraps every request body in a [`LimitedBody`] (and names the call's method in its
/// extensions). The check sits on the body rather than
/// on each service because tonic reports an oversized message with a status code we
/// cannot change per service; a body error that is a `Status` reaches the call as is.
#[derive(Clone)]
struct LimitMessages<S> {
    inner: S,
    limit: usize,
    telemetry: Telemetry,
}

impl<S> Service<HttpRequest<Body>> for LimitMessages<S>
where
    S: Service<HttpRequest<Body>, Response = HttpResponse<Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: HttpRequest<Body>) -> Self::Future {
        let path = request.uri().path().trim_start_matches('/').to_owned();
        let refused = Refused {
            telemetry: self.telemetry.clone(),
            agency: caller_agency(&request, &path),
        };
        request.extensions_mut().insert(CallMethod(path));
        let limit = self.limit;
        self.inner
            .call(request.map(|body| Body::new(LimitedBody::new(body, limit, refused))))
    }
}

/// Admits a call only with a valid client certificate (see [`crate::tls`]): puts the
/// verified [`Peer`] into its extensions, or answers
/// `UNAUTHENTICATED` saying what is wrong without calling the service.
#[derive(Clone)]
struct Authenticate<S> {
    inner: S,
    tls: Arc<ServerTls>,
}

impl<S> Service<HttpRequest<Body>> for Authenticate<S>
where
    S: Service<HttpRequest<Body>, Response = HttpResponse<Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = futures::future::Either<
        std::future::Ready<Result<HttpResponse<Body>, S::Error>>,
        S::Future,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: HttpRequest<Body>) -> Self::Future {
        use futures::future::Either;
        let verdict = match request.extensions().get::<PeerInfo>() {
            Some(info) => info.authenticate(&self.tls),
            None => Err(Refusal::NoCertificate),
        };
        match verdict {
            Ok(peer) => {
                request.extensions_mut().insert(peer);
                Either::Right(self.inner.call(request))
            }
            Err(refusal) => Either::Left(std::future::ready(Ok(refusal.to_status().into_http()))),
        }
    }
}

/// The agency a call comes from, for counting refusals: the adapter's, else the
/// verified requester's, else the one the insecure header names.
fn caller_agency(request: &HttpRequest<Body>, path: &str) -> Agency {
    let service = path.split('/').next().unwrap_or("");
    if let Some(agency) = adapter_agency(service) {
        return agency;
    }
    if let Some(peer) = request.extensions().get::<crate::tls::Peer>() {
        return peer.requester.agency;
    }
    request
        .headers()
        .get(crate::resolver::query::REQUESTER_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| crate::records::agency_from_slug(r.split('/').next().unwrap_or("")))
        .unwrap_or(Agency::Unspecified)
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

/// Where a body counts the message it refuses.
struct Refused {
    telemetry: Telemetry,
    agency: Agency,
}

/// A gRPC request body that fails with `RESOURCE_EXHAUSTED` as soon as a message's
/// length prefix exceeds the limit, before its bytes are buffered.
struct LimitedBody<B> {
    inner: B,
    frames: FrameScanner,
    failed: bool,
    refused: Refused,
}

impl<B> LimitedBody<B> {
    fn new(inner: B, limit: usize, refused: Refused) -> Self {
        LimitedBody {
            inner,
            frames: FrameScanner::new(limit),
            failed: false,
            refused,
        }
    }
}

impl<B> HttpBody for LimitedBody<B>
where
    B: HttpBody<Data = Bytes, Error = Status> + Unpin,
{
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if self.failed {
            return Poll::Ready(None);
        }
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if let Some(Ok(data)) = frame.as_ref().map(|f| f.as_ref().map(Frame::data_ref))
            && let Some(data) = data
            && let Err(status) = self.frames.scan(data)
        {
            self.refused.telemetry.emit(Limited {
                limit: Limit::MessageSize,
                agency: self.refused.agency,
            });
            self.failed = true;
            return Poll::Ready(Some(Err(status)));
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.failed || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Follows the gRPC length-prefixed framing (1 flag byte, 4 length bytes, the message)
/// across body chunks of any size.
struct FrameScanner {
    limit: usize,
    /// The prefix of the next message, as far as it has arrived.
    header: [u8; 5],
    header_len: usize,
    /// Bytes of the current message still to come.
    remaining: usize,
}

impl FrameScanner {
    fn new(limit: usize) -> Self {
        FrameScanner {
            limit,
            header: [0; 5],
            header_len: 0,
            remaining: 0,
        }
    }

    /// Consumes one chunk; `RESOURCE_EXHAUSTED` when a message in it is over the limit.
    fn scan(&mut self, mut chunk: &[u8]) -> Result<(), Status> {
        while !chunk.is_empty() {
            if self.remaining > 0 {
                let n = self.remaining.min(chunk.len());
                self.remaining -= n;
                chunk = &chunk[n..];
                continue;
            }
            let n = (self.header.len() - self.header_len).min(chunk.len());
            self.header[self.header_len..self.header_len + n].copy_from_slice(&chunk[..n]);
            self.header_len += n;
            chunk = &chunk[n..];
            if self.header_len == self.header.len() {
                self.header_len = 0;
                let [_, a, b, c, d] = self.header;
                let len = usize::try_from(u32::from_be_bytes([a, b, c, d])).unwrap_or(usize::MAX);
                if len > self.limit {
                    return Err(Status::resource_exhausted(format!(
                        "request message is {len} bytes, more than the {} bytes ({} MiB) a \
                         govlink server accepts; send less per call (e.g. smaller batches)",
                        self.limit,
                        self.limit >> 20
                    )));
                }
                self.remaining = len;
            }
        }
        Ok(())
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

    fn frame(len: u32) -> Vec<u8> {
        let mut bytes = vec![0];
        bytes.extend_from_slice(&len.to_be_bytes());
        bytes.extend(std::iter::repeat_n(7, usize::try_from(len).unwrap()));
        bytes
    }

    #[test]
    fn frames_up_to_the_limit_pass_in_chunks_of_any_size() {
        let stream: Vec<u8> = [frame(0), frame(10), frame(3), frame(10)].concat();
        for chunk in [1, 2, 4, 5, 6, 11, stream.len()] {
            let mut scanner = FrameScanner::new(10);
            for part in stream.chunks(chunk) {
                scanner.scan(part).unwrap();
            }
            assert_eq!((scanner.remaining, scanner.header_len), (0, 0));
        }
    }

    #[test]
    fn a_frame_over_the_limit_is_resource_exhausted_as_soon_as_its_prefix_arrives() {
        let stream: Vec<u8> = [frame(3), frame(11)].concat();
        for chunk in [1, 3, 8, 9, stream.len()] {
            let mut scanner = FrameScanner::new(10);
            let mut seen = 0;
            let status = stream
                .chunks(chunk)
                .find_map(|part| {
                    seen += part.len();
                    scanner.scan(part).err()
                })
                .expect("refused");
            // Refused on the chunk completing the second prefix, not after its body.
            assert!(
                seen < 13 + chunk,
                "chunk {chunk}: refused after {seen} bytes"
            );
            assert_eq!(status.code(), Code::ResourceExhausted);
            assert!(
                status
                    .message()
                    .starts_with("request message is 11 bytes, more than the 10 bytes"),
                "{}",
                status.message()
            );
        }
        let status = FrameScanner::new(MAX_MESSAGE_BYTES)
            .scan(&[0, 0xff, 0xff, 0xff, 0xff])
            .unwrap_err();
        assert!(
            status.message().contains("4194304 bytes (4 MiB)"),
            "{}",
            status.message()
        );
    }
}
