//! The per-call check of a client certificate, and the handshake-time verifier that
//! defers to it.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::IdentityMapping;
use crate::identity::Requester;
/// The verified caller of a call over mutual TLS, in the request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The agency and service the client certificate was issued to.
    pub requester: Requester,
}

/// Why a call's client certificate is refused (`UNAUTHENTICATED`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The client sent no certificate.
    NoCertificate,
    /// The certificate does not chain to a CA of the bundle.
    UntrustedIssuer,
    /// Past its validity (`not_after` in RFC 2822 form, when readable).
    Expired(Option<String>),
    /// Not valid yet.
    NotYetValid,
    /// On the revocation list.
    Revoked,
    /// Its CA publishes no CRL among those configured, so it cannot be checked.
    UnknownRevocationStatus,
    /// Not issued for client authentication.
    WrongPurpose,
    /// Valid, but it names no requester.
    NoIdentity(String),
    /// Anything else the checks refused.
    Other(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NoCertificate => f.write_str(
                "no client certificate: every call needs one issued by the exchange's CA",
            ),
            Refusal::UntrustedIssuer => {
                f.write_str("client certificate not issued by a CA this server trusts")
            }
            Refusal::Expired(Some(at)) => write!(f, "client certificate expired at {at}"),
            Refusal::Expired(None) => f.write_str("client certificate expired"),
            Refusal::NotYetValid => f.write_str("client certificate not valid yet"),
            Refusal::Revoked => f.write_str("client certificate revoked"),
            Refusal::UnknownRevocationStatus => f.write_str(
                "client certificate's revocation status unknown: no CRL of its CA is configured",
            ),
            Refusal::WrongPurpose => {
                f.write_str("certificate not issued for client authentication")
            }
            Refusal::NoIdentity(why) => write!(f, "client certificate names no requester: {why}"),
            Refusal::Other(why) => write!(f, "client certificate refused: {why}"),
        }
    }
}

impl Refusal {
    /// The refusal as a metric label: one of
    /// [`crate::telemetry::metrics::UNAUTHENTICATED_REASONS`].
    pub fn kind(&self) -> &'static str {
        match self {
            Refusal::NoCertificate => "no_certificate",
            Refusal::UntrustedIssuer => "untrusted_issuer",
            Refusal::Expired(_) => "expired",
            Refusal::NotYetValid => "not_yet_valid",
            Refusal::Revoked => "revoked",
            Refusal::UnknownRevocationStatus => "unknown_revocation_status",
            Refusal::WrongPurpose => "wrong_purpose",
            Refusal::NoIdentity(_) => "no_identity",
            Refusal::Other(_) => "other",
        }
    }

    fn of(error: rustls::Error, leaf: &CertificateDer<'_>) -> Refusal {
        let rustls::Error::InvalidCertificate(error) = error else {
            return Refusal::Other(error.to_string());
        };
        match error {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                Refusal::Expired(not_after(leaf))
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                Refusal::NotYetValid
            }
            CertificateError::Revoked => Refusal::Revoked,
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                Refusal::UntrustedIssuer
            }
            CertificateError::UnknownRevocationStatus => Refusal::UnknownRevocationStatus,
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                Refusal::WrongPurpose
            }
            other => Refusal::Other(format!("{other:?}")),
        }
    }

    /// The refusal as the caller gets it.
    pub fn to_status(&self) -> tonic::Status {
        tonic::Status::unauthenticated(self.to_string())
    }
}

fn not_after(leaf: &CertificateDer<'_>) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(leaf).ok()?;
    cert.validity().not_after.to_rfc2822().ok()
}

/// Checks the chain of `certs` (leaf first) with `verifier` at `now`, then maps the leaf
/// to a requester.
pub(super) fn authenticate(
    verifier: &dyn ClientCertVerifier,
    mapping: &IdentityMapping,
    certs: Option<&[CertificateDer<'static>]>,
    now: SystemTime,
) -> Result<Requester, Refusal> {
    let Some((leaf, intermediates)) = certs.and_then(<[_]>::split_first) else {
        return Err(Refusal::NoCertificate);
    };
    let now = UnixTime::since_unix_epoch(
        now.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default(),
    );
    verifier
        .verify_client_cert(leaf, intermediates, now)
        .map_err(|e| Refusal::of(e, leaf))?;
    mapping
        .requester_of(leaf)
        .map_err(|e| Refusal::NoIdentity(e.to_string()))
}

/// The handshake's client-certificate verifier: asks for a certificate (naming the
/// trusted CAs) and has the client prove it holds the key, but leaves the chain to the
/// per-call check, which can answer with a status that says what is wrong.
#[derive(Debug)]
pub(super) struct AtEachCall {
    inner: Arc<dyn ClientCertVerifier>,
}

impl AtEachCall {
    pub(super) fn new(inner: Arc<dyn ClientCertVerifier>) -> AtEachCall {
        AtEachCall { inner }
    }
}

impl ClientCertVerifier for AtEachCall {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Checked at each call (`authenticate`); nothing is served before that.
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
