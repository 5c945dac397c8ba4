//! The layers in front of every route: the message-size limit on request bodies, the
//! method named in each request's extensions, and (with TLS) the per-call check of the
//! client certificate.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::Service;
use tonic::codegen::http::{Request as HttpRequest, Response as HttpResponse};

use super::{CallMethod, adapter_agency};
use crate::proto::Agency;
use crate::telemetry::events::{Limit, Limited, Unauthenticated};
use crate::telemetry::metrics::Telemetry;
use crate::tls::{PeerInfo, Refusal, ServerTls};

/// Wraps every request body in a [`LimitedBody`] (and names the call's method in its
/// extensions). The check sits on the body rather than
/// on each service because tonic reports an oversized message with a status code we
/// cannot change per service; a body error that is a `Status` reaches the call as is.
#[derive(Clone)]
pub(super) struct LimitMessages<S> {
    pub(super) inner: S,
    pub(super) limit: usize,
    pub(super) telemetry: Telemetry,
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
pub(super) struct Authenticate<S> {
    pub(super) inner: S,
    pub(super) tls: Arc<ServerTls>,
    /// Where refused calls are counted.
    pub(super) telemetry: Telemetry,
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
            Err(refusal) => {
                self.telemetry.emit(Unauthenticated {
                    reason: refusal.kind(),
                });
                Either::Left(std::future::ready(Ok(refusal.to_status().into_http())))
            }
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
        .get(crate::identity::REQUESTER_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| crate::records::agency_from_slug(r.split('/').next().unwrap_or("")))
        .unwrap_or(Agency::Unspecified)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grpc::MAX_MESSAGE_BYTES;
    use tonic::Code;

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
