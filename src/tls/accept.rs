//! Accepting TLS connections: handshakes run concurrently (a slow or silent client
//! holds up no one), each bounded in time, and a bounded number at once.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use futures::Stream;
use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::task::AbortOnDropHandle;
use tonic::transport::server::Connected;

use super::{Peer, Refusal, ServerTls};

/// The longest a client may take over its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; further connections wait to be accepted.
const MAX_HANDSHAKES: usize = 256;
/// How long a connection's verdict on its certificate stands before it is checked
/// again (sooner when the material is reloaded): bounds how long a certificate that
/// expires mid-connection keeps working.
const RECHECK_AFTER: Duration = Duration::from_secs(60);

/// The TLS connections accepted on `listener` with `tls`'s current material.
pub fn incoming(listener: TcpListener, tls: Arc<ServerTls>) -> Incoming {
    let (sender, connections) = mpsc::channel(64);
    let accepting = tokio::spawn(accept(listener, tls, sender));
    Incoming {
        connections,
        _accepting: AbortOnDropHandle::new(accepting),
    }
}

/// A stream of handshaken connections; dropping it stops accepting.
pub struct Incoming {
    connections: mpsc::Receiver<TlsConn>,
    _accepting: AbortOnDropHandle<()>,
}

impl Stream for Incoming {
    type Item = Result<TlsConn, io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.connections.poll_recv(cx).map(|c| c.map(Ok))
    }
}

async fn accept(listener: TcpListener, tls: Arc<ServerTls>, sender: mpsc::Sender<TlsConn>) {
    let permits = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    // Owned here: dropped (and aborted) with this task.
    let mut handshakes = JoinSet::new();
    loop {
        while handshakes.try_join_next().is_some() {}
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            return;
        };
        let (stream, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::warn!(error = %e, "tls: cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (tls, sender) = (Arc::clone(&tls), sender.clone());
        handshakes.spawn(async move {
            let acceptor = TlsAcceptor::from(tls.server_config());
            let stream =
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => {
                        tracing::info!(peer = %remote, error = %e, "tls: handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::info!(peer = %remote, "tls: handshake timed out");
                        return;
                    }
                };
            drop(permit);
            let certs = stream
                .get_ref()
                .1
                .peer_certificates()
                .map(|c| c.iter().map(|c| c.clone().into_owned()).collect());
            let conn = TlsConn {
                stream,
                info: PeerInfo {
                    remote,
                    certs,
                    verdict: Arc::default(),
                },
            };
            let _ = sender.send(conn).await;
        });
    }
}

/// An accepted TLS connection.
pub struct TlsConn {
    stream: TlsStream<TcpStream>,
    info: PeerInfo,
}

/// What a call knows of its connection (in its request's extensions).
#[derive(Clone)]
pub struct PeerInfo {
    remote: SocketAddr,
    certs: Option<Arc<[CertificateDer<'static>]>>,
    /// The connection's last verdict on its certificate, shared by its calls.
    verdict: Arc<Mutex<Option<Verdict>>>,
}

struct Verdict {
    generation: u64,
    at: Instant,
    result: Result<Peer, Refusal>,
}

impl PeerInfo {
    /// The connection's verified caller, from the cached verdict while it stands;
    /// otherwise checked again (and a refusal logged, once per verdict).
    pub fn authenticate(&self, tls: &ServerTls) -> Result<Peer, Refusal> {
        let generation = tls.generation();
        let mut verdict = self.verdict.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = verdict.as_ref()
            && v.generation == generation
            && v.at.elapsed() < RECHECK_AFTER
        {
            return v.result.clone();
        }
        let result = tls
            .authenticate(self.certs.as_deref(), SystemTime::now())
            .map(|requester| Peer { requester });
        if let Err(refusal) = &result {
            tracing::warn!(peer = %self.remote, reason = %refusal, "tls: call refused");
        }
        *verdict = Some(Verdict {
            generation,
            at: Instant::now(),
            result: result.clone(),
        });
        result
    }

    /// The client's address.
    pub fn remote(&self) -> SocketAddr {
        self.remote
    }
}

impl Connected for TlsConn {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.info.clone()
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
