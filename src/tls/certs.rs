//! `govlink certs`: a development CA and the certificates of a secured setup, in one
//! directory:
//!
//! ```text
//! DIR/ca.pem, ca.key              the CA (its key signs certificates and the CRL)
//! DIR/server.pem, server.key      every govlink server (localhost and the deploy/ names)
//! DIR/clients/<agency>/<service>.pem, .key   one per requester / agency system
//! DIR/crl.pem                     the revocation list, signed by the CA
//! ```
//!
//! For development and tests: a production CA is the agencies' own, and keys are issued
//! where they are used. Private keys are written with mode 0600.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevokedCertParams, SanType, SerialNumber,
};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;

use super::IdentityMapping;
use crate::identity::Requester;
/// The trust domain of the development certificates (the `tls_trust_domain` default).
pub const DEV_TRUST_DOMAIN: &str = "gov.example";

/// The identities `certs init` issues: each agency's record system (which publishes
/// through its adapter and carries out its tasks), and the requester services of the
/// example policy and the demo.
pub const DEV_IDENTITIES: [&str; 13] = [
    "social-security/records",
    "public-security/records",
    "housing/records",
    "provident-fund/records",
    "housing/transfer-window",
    "housing/registration-desk",
    "public-security/citizen-portal",
    "public-security/move-window",
    "provident-fund/transfer-window",
    "provident-fund/loan-desk",
    "social-security/transfer-window",
    "social-security/beijing-transfer-desk",
    "social-security/shanghai-transfer-desk",
];

/// Names the server certificate is valid for: loopback, the services of
/// `deploy/docker-compose.yml`, and the Services of `deploy/k8s/` (short and
/// namespace-qualified, in the `govlink` namespace).
const SERVER_NAMES: [&str; 19] = [
    "localhost",
    "resolver",
    "cases",
    "adapter-social-security",
    "adapter-public-security",
    "adapter-housing",
    "adapter-provident-fund",
    "govlink-resolver",
    "govlink-cases",
    "govlink-adapter-social-security",
    "govlink-adapter-public-security",
    "govlink-adapter-housing",
    "govlink-adapter-provident-fund",
    "govlink-resolver.govlink.svc",
    "govlink-cases.govlink.svc",
    "govlink-adapter-social-security.govlink.svc",
    "govlink-adapter-public-security.govlink.svc",
    "govlink-adapter-housing.govlink.svc",
    "govlink-adapter-provident-fund.govlink.svc",
];

/// How long development certificates are valid.
const VALIDITY: Duration = Duration::from_secs(365 * 86_400);
/// How long a CRL is current; `certs revoke` issues a new one.
const CRL_VALIDITY: Duration = Duration::from_secs(30 * 86_400);

/// Why a `certs` command failed.
#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    /// A file could not be written or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// rcgen refused to build a certificate or CRL.
    #[error("certificate: {0}")]
    Build(#[from] rcgen::Error),
    /// The directory's contents are not what `certs init` wrote.
    #[error("{0}")]
    Invalid(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CertsError + '_ {
    move |source| CertsError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The files of one issued certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM, mode 0600).
    pub key: PathBuf,
}

/// The layout of a certificates directory.
#[derive(Debug, Clone)]
pub struct CertsDir {
    dir: PathBuf,
}

impl CertsDir {
    /// The directory `dir` (not read until used).
    pub fn new(dir: impl Into<PathBuf>) -> CertsDir {
        CertsDir { dir: dir.into() }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate clients and servers trust.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }

    /// The servers' certificate and key.
    pub fn server(&self) -> Issued {
        Issued {
            cert: self.dir.join("server.pem"),
            key: self.dir.join("server.key"),
        }
    }

    /// The certificate and key of `requester`.
    pub fn client(&self, requester: &Requester) -> Issued {
        let base = self
            .dir
            .join("clients")
            .join(crate::records::agency_slug(requester.agency));
        Issued {
            cert: base.join(format!("{}.pem", requester.service)),
            key: base.join(format!("{}.key", requester.service)),
        }
    }

    /// The revocation list.
    pub fn crl(&self) -> PathBuf {
        self.dir.join("crl.pem")
    }

    /// Creates the CA, the server certificate, one certificate per [`DEV_IDENTITIES`]
    /// and an empty CRL. Refuses a directory that already holds a CA.
    pub fn init(&self) -> Result<(), CertsError> {
        if self.ca().exists() {
            return Err(CertsError::Invalid(format!(
                "{} exists: this directory already has a CA (issue or revoke with it, or choose another directory)",
                self.ca().display()
            )));
        }
        fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "govlink development CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        (params.not_before, params.not_after) = validity(Duration::from_secs(10 * 365 * 86_400));
        let ca = params.self_signed(&key)?;
        write(&self.ca(), ca.pem().as_bytes(), false)?;
        write(&self.ca_key(), key.serialize_pem().as_bytes(), true)?;
        self.issue_server()?;
        for identity in DEV_IDENTITIES {
            let requester = Requester::parse(identity).expect("the identities are requesters");
            self.issue(&requester, VALIDITY)?;
        }
        self.write_crl(Vec::new(), 1)
    }

    fn issuer(&self) -> Result<Issuer<'static, KeyPair>, CertsError> {
        let pem = fs::read_to_string(self.ca()).map_err(io(&self.ca()))?;
        let key = fs::read_to_string(self.ca_key()).map_err(io(&self.ca_key()))?;
        Ok(Issuer::from_ca_cert_pem(&pem, KeyPair::from_pem(&key)?)?)
    }

    fn issue_server(&self) -> Result<Issued, CertsError> {
        self.issue_server_with(validity(VALIDITY))
    }

    /// Issues the servers' certificate again, valid from `not_before` to `not_after`
    /// (to renew it, or, with dates in the past, to test what an expired one does).
    pub fn reissue_server(
        &self,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Result<Issued, CertsError> {
        self.issue_server_with((not_before.into(), not_after.into()))
    }

    fn issue_server_with(
        &self,
        dates: (OffsetDateTime, OffsetDateTime),
    ) -> Result<Issued, CertsError> {
        let mut params = CertificateParams::new(SERVER_NAMES.map(String::from).to_vec())?;
        for ip in ["127.0.0.1", "::1"] {
            params
                .subject_alt_names
                .push(SanType::IpAddress(ip.parse().expect("an IP address")));
        }
        params
            .distinguished_name
            .push(DnType::CommonName, "govlink server");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params, self.server(), dates)
    }

    /// Issues `requester` a client certificate valid for `valid` from now (a zero
    /// `valid` gives one that has already expired, for tests).
    pub fn issue(&self, requester: &Requester, valid: Duration) -> Result<Issued, CertsError> {
        let mut params = CertificateParams::default();
        params.subject_alt_names = vec![SanType::URI(
            IdentityMapping::uri_of(DEV_TRUST_DOMAIN, requester)
                .try_into()
                .map_err(|e| CertsError::Invalid(format!("{requester}: {e}")))?,
        )];
        params.distinguished_name.push(
            DnType::OrganizationName,
            crate::records::agency_slug(requester.agency),
        );
        params
            .distinguished_name
            .push(DnType::CommonName, requester.service.as_str());
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let files = self.client(requester);
        if let Some(parent) = files.cert.parent() {
            fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let dates = if valid.is_zero() {
            let now = OffsetDateTime::now_utc();
            (
                now - Duration::from_secs(2 * 86_400),
                now - Duration::from_secs(86_400),
            )
        } else {
            validity(valid)
        };
        self.sign(params, files, dates)
    }

    /// Signs `params` with the CA for the `dates` (not before, not after) and writes
    /// the certificate and a new key to `files`.
    fn sign(
        &self,
        mut params: CertificateParams,
        files: Issued,
        dates: (OffsetDateTime, OffsetDateTime),
    ) -> Result<Issued, CertsError> {
        let issuer = self.issuer()?;
        let key = KeyPair::generate()?;
        params.serial_number = Some(SerialNumber::from_slice(&random_serial()));
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        (params.not_before, params.not_after) = dates;
        let cert = params.signed_by(&key, &issuer)?;
        write(&files.cert, cert.pem().as_bytes(), false)?;
        write(&files.key, key.serialize_pem().as_bytes(), true)?;
        Ok(files)
    }

    /// Adds the certificate at `cert` to the CRL and signs a new one (its number one
    /// higher). Servers pick it up at their next reload.
    pub fn revoke(&self, cert: &Path) -> Result<(), CertsError> {
        let der = first_cert_der(cert)?;
        let (_, parsed) = X509Certificate::from_der(&der)
            .map_err(|e| CertsError::Invalid(format!("{}: {e}", cert.display())))?;
        let serial = parsed.raw_serial().to_vec();
        let (mut revoked, number) = self.revoked()?;
        if !revoked.iter().any(|r| r.serial_number.to_bytes() == serial) {
            revoked.push(RevokedCertParams {
                serial_number: SerialNumber::from_slice(&serial),
                revocation_time: OffsetDateTime::now_utc(),
                reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                invalidity_date: None,
            });
        }
        self.write_crl(revoked, number + 1)
    }

    /// The entries and number of the current CRL.
    fn revoked(&self) -> Result<(Vec<RevokedCertParams>, u64), CertsError> {
        let pem = fs::read(self.crl()).map_err(io(&self.crl()))?;
        let der = rustls::pki_types::pem::PemObject::from_pem_slice(&pem)
            .map(|crl: rustls::pki_types::CertificateRevocationListDer<'_>| crl.to_vec())
            .map_err(|e| CertsError::Invalid(format!("{}: {e}", self.crl().display())))?;
        let (_, crl) = CertificateRevocationList::from_der(&der)
            .map_err(|e| CertsError::Invalid(format!("{}: {e}", self.crl().display())))?;
        let number = crl
            .crl_number()
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(1);
        let revoked = crl
            .iter_revoked_certificates()
            .map(|r| RevokedCertParams {
                serial_number: SerialNumber::from_slice(r.raw_serial()),
                revocation_time: r.revocation_date.to_datetime(),
                reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect();
        Ok((revoked, number))
    }

    fn write_crl(&self, revoked: Vec<RevokedCertParams>, number: u64) -> Result<(), CertsError> {
        let now = OffsetDateTime::now_utc();
        let crl = CertificateRevocationListParams {
            this_update: now - Duration::from_secs(60),
            next_update: now + CRL_VALIDITY,
            crl_number: SerialNumber::from(number),
            issuing_distribution_point: None,
            revoked_certs: revoked,
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&self.issuer()?)?;
        // Written aside and renamed: a server reloading meanwhile reads the old or the new.
        let fresh = self.dir.join("crl.pem.new");
        write(&fresh, crl.pem()?.as_bytes(), false)?;
        fs::rename(&fresh, self.crl()).map_err(io(&self.crl()))
    }
}

/// From a minute ago (clocks differ) for `valid`.
fn validity(valid: Duration) -> (OffsetDateTime, OffsetDateTime) {
    let now = OffsetDateTime::now_utc();
    (now - Duration::from_secs(60), now + valid)
}

/// 16 random bytes, positive as a DER integer.
fn random_serial() -> [u8; 16] {
    let mut serial = *uuid::Uuid::new_v4().as_bytes();
    serial[0] &= 0x7f;
    serial[0] |= 0x01;
    serial
}

fn first_cert_der(path: &Path) -> Result<Vec<u8>, CertsError> {
    let certs = super::read_certs(path).map_err(|e| CertsError::Invalid(e.to_string()))?;
    Ok(certs[0].to_vec())
}

fn write(path: &Path, bytes: &[u8], private: bool) -> Result<(), CertsError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    if private {
        options.mode(0o600);
    }
    options
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(io(path))
}
