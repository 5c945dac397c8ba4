//! Mutual TLS on every gRPC endpoint: the server's certificate, the CA bundle client
//! certificates must chain to, the revocation list, and who a verified client is.
//!
//! Servers speak TLS 1.3 only. A client certificate is *asked for* in the handshake and
//! the client must prove it holds the key, but the chain, validity and revocation are
//! checked on every call ([`ServerTls::authenticate`], cached per connection until the
//! material changes), so a refusal is a gRPC `UNAUTHENTICATED` that says why (no
//! certificate, another CA, expired, revoked, no identity) instead of a handshake alert
//! the caller sees as a broken connection — and a certificate revoked while its
//! connection is open is refused from its next call on.
//!
//! Certificates, key, CA bundle and CRL are read again on `SIGHUP` and whenever one of
//! the files changes ([`ServerTls::watch`]); material that does not load — a server
//! certificate that expired or is not yet valid included — is refused and the previous
//! material stays in use. Each load reports the certificates' expiry ([`expiry`]).

mod accept;
pub mod certs;
pub mod client;
pub mod expiry;
mod identity;
mod verify;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio_util::sync::CancellationToken;

pub use accept::{PeerInfo, TlsConn, incoming};
pub use identity::{IdentityError, IdentityMapping};
pub use verify::{Peer, Refusal};

use crate::identity::Requester;
use crate::telemetry::metrics::Telemetry;
use expiry::CertificateRead;
/// The files a TLS server reads (all PEM, the CRL PEM or DER).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The server's certificate chain, leaf first.
    pub cert: PathBuf,
    /// The server's private key.
    pub key: PathBuf,
    /// The CAs client certificates must chain to.
    pub client_ca: PathBuf,
    /// Revoked certificates, when revocation is in use.
    pub crl: Option<PathBuf>,
}

impl TlsFiles {
    fn all(&self) -> impl Iterator<Item = &Path> {
        [&self.cert, &self.key, &self.client_ca]
            .into_iter()
            .map(PathBuf::as_path)
            .chain(self.crl.as_deref())
    }
}

/// Why TLS material could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("tls: cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file holds nothing usable or something malformed.
    #[error("tls: {path}: {problem}")]
    Content {
        /// The file.
        path: PathBuf,
        /// What is wrong with it (never the key's bytes).
        problem: String,
    },
    /// The pieces do not fit together (key and certificate, CA bundle and CRL).
    #[error("tls: {0}")]
    Config(String),
}

/// The one crypto provider of every TLS config govlink builds.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Makes [`provider`] the process's default, for the clients that build their TLS
/// configs from the default (the Redis client). A process calls it once as it starts
/// (`main`, and the app for processes built in-process); a provider installed already is
/// as good.
pub fn install_process_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// What one load of the files produced.
struct Loaded {
    /// For new handshakes.
    config: Arc<ServerConfig>,
    /// The per-call check of client certificates (CA bundle and CRLs).
    verifier: Arc<dyn ClientCertVerifier>,
    /// Counts loads: a connection's cached verdict is good for one generation.
    generation: u64,
    /// The files' modification times and sizes when they were read.
    stamps: Vec<Option<(SystemTime, u64)>>,
}

/// A TLS server's material, reloadable while it serves.
pub struct ServerTls {
    files: TlsFiles,
    mapping: IdentityMapping,
    loaded: RwLock<Arc<Loaded>>,
    generations: AtomicU64,
    /// Where each load reports the certificates' expiry.
    telemetry: Telemetry,
}

impl ServerTls {
    /// Loads `files`; client certificates name requesters through `mapping`. The
    /// certificates' expiry is reported to `telemetry`, at each reload too.
    pub fn load(
        files: TlsFiles,
        mapping: IdentityMapping,
        telemetry: Telemetry,
    ) -> Result<Arc<ServerTls>, TlsError> {
        let loaded = load(&files, 0, &telemetry)?;
        tracing::info!(
            cert = %files.cert.display(),
            client_ca = %files.client_ca.display(),
            crl = files.crl.as_ref().map(|p| p.display().to_string()),
            identity = %mapping,
            "tls: serving tls 1.3, client certificates required"
        );
        Ok(Arc::new(ServerTls {
            files,
            mapping,
            loaded: RwLock::new(Arc::new(loaded)),
            generations: AtomicU64::new(0),
            telemetry,
        }))
    }

    fn current(&self) -> Arc<Loaded> {
        Arc::clone(&self.loaded.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// The config new handshakes use.
    pub(crate) fn server_config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.current().config)
    }

    /// Reads the files again if any changed since the last load (or `always`), and
    /// swaps the new material in; on an error the previous material stays.
    pub fn reload(&self, always: bool) -> Result<bool, TlsError> {
        let current = self.current();
        if !always && stamps(&self.files) == current.stamps {
            return Ok(false);
        }
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        let loaded = load(&self.files, generation, &self.telemetry)?;
        *self.loaded.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(loaded);
        tracing::info!(generation, "tls: certificates, ca bundle and crl reloaded");
        Ok(true)
    }

    /// Reloads on `SIGHUP` and when a file changes (checked every `interval`), until
    /// `stop`.
    pub async fn watch(
        self: Arc<Self>,
        interval: Duration,
        stop: CancellationToken,
    ) -> Result<(), String> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let always = tokio::select! {
                () = stop.cancelled() => return Ok(()),
                _ = hangups.recv() => true,
                _ = ticks.tick() => false,
            };
            if let Err(e) = self.reload(always) {
                tracing::error!(error = %e, "tls: reload refused; the previous certificates stay in use");
            }
        }
    }

    /// The requester the client certificates of a connection name, after checking them
    /// against the current CA bundle and CRL at `now`.
    pub fn authenticate(
        &self,
        certs: Option<&[CertificateDer<'static>]>,
        now: SystemTime,
    ) -> Result<Requester, Refusal> {
        verify::authenticate(&*self.current().verifier, &self.mapping, certs, now)
    }

    fn generation(&self) -> u64 {
        self.current().generation
    }
}

fn stamps(files: &TlsFiles) -> Vec<Option<(SystemTime, u64)>> {
    files
        .all()
        .map(|p| {
            let meta = std::fs::metadata(p).ok()?;
            Some((meta.modified().ok()?, meta.len()))
        })
        .collect()
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn content(path: &Path, problem: impl Into<String>) -> TlsError {
    TlsError::Content {
        path: path.to_owned(),
        problem: problem.into(),
    }
}

/// Every PEM object of kind `T` in `bytes` read from `path` (at least one); `what` names
/// the kind in errors, e.g. "certificate".
fn pem_all<T: PemObject>(path: &Path, bytes: &[u8], what: &str) -> Result<Vec<T>, TlsError> {
    let all = T::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| content(path, format!("not PEM ({what}): {e}")))?;
    if all.is_empty() {
        return Err(content(path, format!("holds no {what}")));
    }
    Ok(all)
}

/// The PEM certificates of `path` (at least one).
pub(crate) fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    pem_all(path, &read(path)?, "certificate")
}

/// The PEM private key of `path`. Its bytes never reach an error or a log.
pub(crate) fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes)
        .map_err(|_| content(path, "holds no PEM private key (PKCS#8, PKCS#1 or SEC1)"))
}

/// The CRLs of `path`: PEM (any number) or one DER.
fn read_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let bytes = read(path)?;
    if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
        pem_all(path, &bytes, "X509 CRL")
    } else {
        Ok(vec![CertificateRevocationListDer::from(bytes)])
    }
}

fn load(files: &TlsFiles, generation: u64, telemetry: &Telemetry) -> Result<Loaded, TlsError> {
    // Stamps first: a file replaced while it is read is read again at the next check.
    let stamps = stamps(files);
    let now = SystemTime::now();
    let chain = read_certs(&files.cert)?;
    // Served, an expired certificate fails every handshake with an alert the caller
    // cannot read: refuse it here, saying which file and since when.
    let server = expiry::Validity::of_certs(&files.cert, &chain)?;
    server.check_current(now)?;
    let key = read_key(&files.key)?;
    let client_cas = read_certs(&files.client_ca)?;
    let client_ca = expiry::Validity::of_certs(&files.client_ca, &client_cas)?;
    let mut roots = RootCertStore::empty();
    for cert in client_cas {
        roots
            .add(cert)
            .map_err(|e| content(&files.client_ca, format!("not a CA certificate: {e}")))?;
    }
    let crls = match &files.crl {
        Some(path) => read_crls(path)?,
        None => Vec::new(),
    };
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .with_crls(crls)
        .allow_unauthenticated()
        .build()
        .map_err(|e| TlsError::Config(format!("client certificate checks: {e}")))?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(Arc::new(verify::AtEachCall::new(Arc::clone(&verifier))))
        .with_single_cert(chain, key)
        .map_err(|e| {
            TlsError::Config(format!(
                "{} and {} do not make a server identity: {e}",
                files.cert.display(),
                files.key.display()
            ))
        })?;
    let mut config = config;
    config.alpn_protocols = vec![b"h2".to_vec()];
    // Reported once the material is known to load: a refused reload changes nothing.
    for (role, validity) in [
        (expiry::CertificateRole::Server, &server),
        (expiry::CertificateRole::ClientCa, &client_ca),
    ] {
        telemetry.emit(CertificateRead {
            role,
            validity,
            now,
        });
    }
    Ok(Loaded {
        config: Arc::new(config),
        verifier,
        generation,
        stamps,
    })
}

#[cfg(test)]
mod tests;
