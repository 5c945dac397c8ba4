//! Signed chains: a writer signs its chain's start and every checkpoint with the key of
//! its TLS certificate, and whoever reads the trail checks the start's certificate
//! against the CA bundle and the signatures against that certificate. Entries are not
//! signed (a lookup waits on its entry's ack, not on a signature): they are bound to the
//! signed start by the hash chain, and to the writer's key again by each signed
//! checkpoint of the head.
//!
//! What is signed, in a fixed byte layout (integers big-endian; a *field* is a u32 byte
//! length and the bytes; an *optional* is a byte 0, or a byte 1 and the value):
//!
//! ```text
//! start      = "govlink.audit.v1 start\0" || field(chain_id)
//!              || optional(i64 at.seconds || i32 at.nanos)          the entry's time
//!              || field(writer) || field(host) || u32 pid
//!              || field(abandoned_chain_id) || optional(u64 abandoned_sequence)
//!              || field(abandoned_hash)
//!              || u32 count || count × (field(chain_id) || optional(u64 sequence) || field(hash))
//!              || u32 count || count × SHA-256(certificate DER)     the chain, leaf first
//!              || u32 signature_scheme
//! checkpoint = "govlink.audit.v1 checkpoint\0" || field(chain_id) || u64 sequence
//!              || field(hash) || optional(i64 at.seconds || i32 at.nanos) || u8 closed
//! ```
//!
//! Every field of the start but its signature is covered, so a start cannot be moved to
//! another chain id, time, certificate or list of abandoned chains. A checkpoint is
//! checked with the key and scheme of its chain's start.

use std::path::Path;
use std::time::Duration;

use rustls::SignatureScheme;
use rustls::pki_types::{
    CertificateDer, PrivateKeyDer, SignatureVerificationAlgorithm, TrustAnchor, UnixTime,
};
use sha2::{Digest, Sha256};
use webpki::{EndEntityCert, KeyUsage};

use super::chain::Hash;
use crate::proto::{AuditCheckpoint, ChainStart};

const START_DOMAIN: &[u8] = b"govlink.audit.v1 start\0";
const CHECKPOINT_DOMAIN: &[u8] = b"govlink.audit.v1 checkpoint\0";

/// The schemes a writer may sign with, in order of preference, and how each is checked.
static SCHEMES: [(SignatureScheme, &dyn SignatureVerificationAlgorithm); 4] = [
    (
        SignatureScheme::ECDSA_NISTP256_SHA256,
        webpki::ring::ECDSA_P256_SHA256,
    ),
    (
        SignatureScheme::ECDSA_NISTP384_SHA384,
        webpki::ring::ECDSA_P384_SHA384,
    ),
    (SignatureScheme::ED25519, webpki::ring::ED25519),
    (
        SignatureScheme::RSA_PSS_SHA256,
        webpki::ring::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
    ),
];

/// Why signing could not be set up, or the CA bundle not read.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// The certificate, key or CA files could not be read.
    #[error("{0}")]
    Files(#[from] crate::tls::TlsError),
    /// The key cannot sign with any scheme a verifier checks, or does not belong to the
    /// certificate.
    #[error("audit signing key: {0}")]
    Key(String),
    /// A CA of the bundle is not a usable trust anchor.
    #[error("audit CA bundle: {0}")]
    Ca(String),
}

/// Signs this process's chain starts and checkpoints (the key of its TLS certificate).
pub struct Signer {
    signer: Box<dyn rustls::sign::Signer>,
    /// The certificate chain, DER, leaf first: each chain's start carries it.
    certificates: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("scheme", &self.signer.scheme())
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// The signer of a process serving TLS with `files`: its certificate and key; `None`
    /// without TLS (`dev`, `demo`, tests), whose chains are unsigned. The files are read
    /// once: a rotated certificate signs the chains of the next start.
    pub fn of_tls(files: Option<&crate::tls::TlsFiles>) -> Result<Option<Signer>, SigningError> {
        files
            .map(|files| Signer::load(&files.cert, &files.key))
            .transpose()
    }

    /// The signer of the certificate chain in `cert` (PEM, leaf first) with the key in
    /// `key` (PEM).
    pub fn load(cert: &Path, key: &Path) -> Result<Signer, SigningError> {
        let certificates = crate::tls::read_certs(cert)?;
        let key = crate::tls::read_key(key)?;
        Signer::new(&certificates, &key)
    }

    /// The signer of `certificates` (leaf first) with `key`, which must be the leaf's.
    pub fn new(
        certificates: &[CertificateDer<'_>],
        key: &PrivateKeyDer<'_>,
    ) -> Result<Signer, SigningError> {
        let leaf = certificates
            .first()
            .ok_or_else(|| SigningError::Key("no certificate".into()))?;
        let key = rustls::crypto::ring::sign::any_supported_type(key)
            .map_err(|e| SigningError::Key(e.to_string()))?;
        let offered: Vec<SignatureScheme> = SCHEMES.iter().map(|(s, _)| *s).collect();
        let signer = key.choose_scheme(&offered).ok_or_else(|| {
            SigningError::Key(
                "its algorithm signs with none of ECDSA P-256/P-384, Ed25519, RSA-PSS".into(),
            )
        })?;
        // A key of another certificate would sign starts nobody can check: refuse it now.
        let probe = b"govlink.audit.v1 key check";
        let signature = signer
            .sign(probe)
            .map_err(|e| SigningError::Key(e.to_string()))?;
        if !signature_valid(leaf, u16::from(signer.scheme()), probe, &signature) {
            return Err(SigningError::Key(
                "the key does not belong to the certificate".into(),
            ));
        }
        Ok(Signer {
            signer,
            certificates: certificates.iter().map(|c| c.to_vec()).collect(),
        })
    }

    /// Puts the certificates, the scheme and the signature into `start`, the first entry
    /// of chain `chain_id` written `at`.
    pub fn sign_start(
        &self,
        chain_id: &str,
        at: Option<&prost_types::Timestamp>,
        start: &mut ChainStart,
    ) -> Result<(), SigningError> {
        start.certificates.clone_from(&self.certificates);
        start.signature_scheme = u32::from(u16::from(self.signer.scheme()));
        start.signature = self
            .signer
            .sign(&start_bytes(chain_id, at, start))
            .map_err(|e| SigningError::Key(e.to_string()))?;
        Ok(())
    }

    /// Puts the signature into `checkpoint`.
    pub fn sign_checkpoint(&self, checkpoint: &mut AuditCheckpoint) -> Result<(), SigningError> {
        checkpoint.signature = self
            .signer
            .sign(&checkpoint_bytes(checkpoint))
            .map_err(|e| SigningError::Key(e.to_string()))?;
        Ok(())
    }
}

/// The CAs a writer's certificate must chain to.
#[derive(Debug, Clone)]
pub struct TrustedCas {
    anchors: Vec<TrustAnchor<'static>>,
}

/// Why a chain's start does not prove who wrote the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartRefusal {
    /// It carries no certificate or no signature.
    Unsigned,
    /// Its certificate does not chain to a trusted CA, or was not valid at the start's
    /// time (why).
    Untrusted(String),
    /// The signature scheme is not one govlink signs with.
    UnknownScheme(u32),
    /// The signature does not match the start.
    BadSignature,
}

impl std::fmt::Display for StartRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartRefusal::Unsigned => f.write_str("its start is not signed"),
            StartRefusal::Untrusted(why) => {
                write!(f, "its start's certificate is not trusted: {why}")
            }
            StartRefusal::UnknownScheme(s) => {
                write!(f, "its start is signed with unknown scheme {s:#06x}")
            }
            StartRefusal::BadSignature => {
                f.write_str("its start's signature does not match the start")
            }
        }
    }
}

/// The verified signer of a chain: its certificate and scheme, to check checkpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterKey {
    leaf: Vec<u8>,
    scheme: u16,
}

impl WriterKey {
    /// Whether `checkpoint` carries a valid signature of this writer.
    pub fn signed(&self, checkpoint: &AuditCheckpoint) -> bool {
        let leaf = CertificateDer::from(self.leaf.as_slice());
        signature_valid(
            &leaf,
            self.scheme,
            &checkpoint_bytes(checkpoint),
            &checkpoint.signature,
        )
    }

    /// SHA-256 of the writer's certificate: who wrote the chain, to compare chains by.
    pub fn fingerprint(&self) -> Hash {
        Sha256::digest(&self.leaf).into()
    }

    /// Bytes held.
    pub fn held_bytes(&self) -> usize {
        std::mem::size_of::<WriterKey>() + self.leaf.capacity()
    }
}

impl TrustedCas {
    /// The CAs of the PEM bundle at `path`.
    pub fn load(path: &Path) -> Result<TrustedCas, SigningError> {
        TrustedCas::new(&crate::tls::read_certs(path)?)
    }

    /// The CAs `cas`.
    pub fn new(cas: &[CertificateDer<'_>]) -> Result<TrustedCas, SigningError> {
        let anchors = cas
            .iter()
            .map(|ca| {
                webpki::anchor_from_trusted_cert(ca)
                    .map(|a| a.to_owned())
                    .map_err(|e| SigningError::Ca(format!("{e:?}")))
            })
            .collect::<Result<_, _>>()?;
        Ok(TrustedCas { anchors })
    }

    /// Checks the start of chain `chain_id`, written `at`: its certificate chains to a
    /// CA of the bundle for server authentication at `at`, and its signature matches.
    pub fn check_start(
        &self,
        chain_id: &str,
        at: Option<&prost_types::Timestamp>,
        start: &ChainStart,
    ) -> Result<WriterKey, StartRefusal> {
        let Some((leaf, intermediates)) = start.certificates.split_first() else {
            return Err(StartRefusal::Unsigned);
        };
        if start.signature.is_empty() {
            return Err(StartRefusal::Unsigned);
        }
        let scheme = u16::try_from(start.signature_scheme)
            .ok()
            .filter(|s| algorithm(*s).is_some())
            .ok_or(StartRefusal::UnknownScheme(start.signature_scheme))?;
        let leaf_der = CertificateDer::from(leaf.as_slice());
        let intermediates: Vec<CertificateDer<'_>> = intermediates
            .iter()
            .map(|c| CertificateDer::from(c.as_slice()))
            .collect();
        let cert = EndEntityCert::try_from(&leaf_der).map_err(untrusted)?;
        // Before the epoch or without a time there is nothing to check validity against.
        let seconds = at
            .and_then(|t| u64::try_from(t.seconds).ok())
            .ok_or_else(|| StartRefusal::Untrusted("the start has no valid time".into()))?;
        cert.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &self.anchors,
            &intermediates,
            UnixTime::since_unix_epoch(Duration::from_secs(seconds)),
            KeyUsage::server_auth(),
            None,
            None,
        )
        .map_err(untrusted)?;
        if !signature_valid(
            &leaf_der,
            scheme,
            &start_bytes(chain_id, at, start),
            &start.signature,
        ) {
            return Err(StartRefusal::BadSignature);
        }
        Ok(WriterKey {
            leaf: leaf.clone(),
            scheme,
        })
    }
}

/// Why webpki refused a start's certificate, as the report says it.
fn untrusted(error: webpki::Error) -> StartRefusal {
    use webpki::Error;
    StartRefusal::Untrusted(match error {
        // Another CA's certificate; with a CA of the same name, its signature does not match.
        Error::UnknownIssuer | Error::InvalidSignatureForPublicKey => {
            "not issued by a trusted CA".into()
        }
        Error::CertExpired { .. } => "expired before the chain started".into(),
        Error::CertNotValidYet { .. } => "not valid yet when the chain started".into(),
        Error::RequiredEkuNotFoundContext(_) => "not issued for a server".into(),
        other => format!("{other:?}"),
    })
}

/// The verification algorithm of TLS signature scheme `scheme`, if govlink signs with it.
fn algorithm(scheme: u16) -> Option<&'static dyn SignatureVerificationAlgorithm> {
    SCHEMES
        .iter()
        .find(|(s, _)| u16::from(*s) == scheme)
        .map(|(_, alg)| *alg)
}

/// Whether `signature` is `leaf`'s key's signature of `message` under `scheme`.
fn signature_valid(
    leaf: &CertificateDer<'_>,
    scheme: u16,
    message: &[u8],
    signature: &[u8],
) -> bool {
    let (Some(alg), Ok(cert)) = (algorithm(scheme), EndEntityCert::try_from(leaf)) else {
        return false;
    };
    cert.verify_signature(alg, message, signature).is_ok()
}

/// The bytes a chain's start signature covers (see the module docs).
pub(crate) fn start_bytes(
    chain_id: &str,
    at: Option<&prost_types::Timestamp>,
    start: &ChainStart,
) -> Vec<u8> {
    let mut out = Layout(START_DOMAIN.to_vec());
    out.field(chain_id.as_bytes());
    out.time(at);
    out.field(start.writer.as_bytes());
    out.field(start.host.as_bytes());
    out.0.extend_from_slice(&start.pid.to_be_bytes());
    out.field(start.abandoned_chain_id.as_bytes());
    out.optional(start.abandoned_sequence);
    out.field(&start.abandoned_hash);
    out.count(start.abandoned.len());
    for abandoned in &start.abandoned {
        out.field(abandoned.chain_id.as_bytes());
        out.optional(abandoned.sequence);
        out.field(&abandoned.hash);
    }
    out.count(start.certificates.len());
    for certificate in &start.certificates {
        out.0.extend_from_slice(&Sha256::digest(certificate));
    }
    out.0
        .extend_from_slice(&start.signature_scheme.to_be_bytes());
    out.0
}

/// The bytes a checkpoint's signature covers (see the module docs).
pub(crate) fn checkpoint_bytes(checkpoint: &AuditCheckpoint) -> Vec<u8> {
    let mut out = Layout(CHECKPOINT_DOMAIN.to_vec());
    out.field(checkpoint.chain_id.as_bytes());
    out.0.extend_from_slice(&checkpoint.sequence.to_be_bytes());
    out.field(&checkpoint.hash);
    out.time(checkpoint.at.as_ref());
    out.0.push(u8::from(checkpoint.closed));
    out.0
}

/// Bytes being laid out for a signature.
struct Layout(Vec<u8>);

impl Layout {
    /// A u32 length, then the bytes. Fields are far below 4 GiB (a message's size).
    fn field(&mut self, bytes: &[u8]) {
        self.count(bytes.len());
        self.0.extend_from_slice(bytes);
    }

    fn count(&mut self, n: usize) {
        self.0
            .extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes());
    }

    fn optional(&mut self, value: Option<u64>) {
        match value {
            None => self.0.push(0),
            Some(v) => {
                self.0.push(1);
                self.0.extend_from_slice(&v.to_be_bytes());
            }
        }
    }

    fn time(&mut self, at: Option<&prost_types::Timestamp>) {
        match at {
            None => self.0.push(0),
            Some(at) => {
                self.0.push(1);
                self.0.extend_from_slice(&at.seconds.to_be_bytes());
                self.0.extend_from_slice(&at.nanos.to_be_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests;
