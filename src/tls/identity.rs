//! Who a client certificate names: the requester (agency and service) it was issued to.
//!
//! Two mappings, chosen by the `tls_identity` setting:
//! - `uri` (the default): a URI subject alternative name
//!   `spiffe://<trust domain>/agency/<agency>/svc/<service>`, e.g.
//!   `spiffe://gov.example/agency/housing/svc/transfer-window`. Exactly one such URI
//!   of the configured trust domain must be present.
//! - `subject`: the subject's organization (O) is the agency and its common name (CN)
//!   the service, e.g. `O=housing, CN=transfer-window`, for CAs that cannot write URIs.
//!
//! Agencies and services are the policy's names (kebab-case), so a certificate, the
//! policy file and the audit trail all name a requester the same way.

use std::fmt;

use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use crate::identity::Requester;
/// How certificates name requesters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityMapping {
    /// A SPIFFE-style URI SAN in `trust_domain`.
    Uri {
        /// The trust domain every identity's URI must be in, e.g. `gov.example`.
        trust_domain: String,
    },
    /// The subject: O = agency, CN = service.
    Subject,
}

/// Why a certificate names no requester.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The certificate could not be parsed.
    #[error("the certificate cannot be read: {0}")]
    Unreadable(String),
    /// No URI of the trust domain, or more than one.
    #[error(
        "the certificate must carry exactly one URI SAN spiffe://{trust_domain}/agency/<agency>/svc/<service>; it has {found}"
    )]
    Uri {
        /// The configured trust domain.
        trust_domain: String,
        /// What was found instead (how many URIs of the domain, or none).
        found: String,
    },
    /// The URI or subject names something that is not a requester.
    #[error("the certificate names {named:?}, not a requester: {reason}")]
    NotARequester {
        /// The name as found (cut to 128 characters).
        named: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The subject lacks the O or CN the subject mapping reads.
    #[error("the certificate's subject must name the agency as O and the service as CN")]
    Subject,
}

impl IdentityMapping {
    /// The URI of `requester` under this mapping's trust domain (for `govlink certs`).
    pub fn uri_of(trust_domain: &str, requester: &Requester) -> String {
        format!(
            "spiffe://{trust_domain}/agency/{}/svc/{}",
            crate::records::agency_slug(requester.agency),
            requester.service
        )
    }

    /// The requester the DER certificate `der` was issued to.
    pub fn requester_of(&self, der: &[u8]) -> Result<Requester, IdentityError> {
        let (_, cert) =
            X509Certificate::from_der(der).map_err(|e| IdentityError::Unreadable(e.to_string()))?;
        match self {
            IdentityMapping::Uri { trust_domain } => from_uri(&cert, trust_domain),
            IdentityMapping::Subject => from_subject(&cert),
        }
    }
}

impl fmt::Display for IdentityMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentityMapping::Uri { trust_domain } => {
                write!(f, "uri (spiffe://{trust_domain}/agency/…/svc/…)")
            }
            IdentityMapping::Subject => f.write_str("subject (O=agency, CN=service)"),
        }
    }
}

fn from_uri(cert: &X509Certificate<'_>, trust_domain: &str) -> Result<Requester, IdentityError> {
    let prefix = format!("spiffe://{trust_domain}/");
    let uris: Vec<&str> = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::URI(uri) => Some(*uri),
                    _ => None,
                })
                .filter(|uri| uri.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default();
    let [uri] = uris[..] else {
        return Err(IdentityError::Uri {
            trust_domain: trust_domain.to_owned(),
            found: match uris.len() {
                0 => "none".into(),
                n => format!("{n}"),
            },
        });
    };
    let not_a_requester = |reason: &str| IdentityError::NotARequester {
        named: uri.chars().take(128).collect(),
        reason: reason.to_owned(),
    };
    let path = &uri[prefix.len()..];
    let mut parts = path.split('/');
    match (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) {
        (Some("agency"), Some(agency), Some("svc"), Some(service), None) => {
            Requester::parse(&format!("{agency}/{service}"))
                .map_err(|e| not_a_requester(&e.to_string()))
        }
        _ => Err(not_a_requester(
            "the path must be /agency/<agency>/svc/<service>",
        )),
    }
}

fn from_subject(cert: &X509Certificate<'_>) -> Result<Requester, IdentityError> {
    let subject = cert.subject();
    // Exactly one of each: a second O or CN would make the identity ambiguous.
    fn only<'a>(values: Vec<&x509_parser::x509::AttributeTypeAndValue<'a>>) -> Option<&'a str> {
        match values[..] {
            [one] => one.as_str().ok(),
            _ => None,
        }
    }
    let agency = only(subject.iter_organization().collect()).ok_or(IdentityError::Subject)?;
    let service = only(subject.iter_common_name().collect()).ok_or(IdentityError::Subject)?;
    let named = format!("{agency}/{service}");
    Requester::parse(&named).map_err(|e| IdentityError::NotARequester {
        named: named.chars().take(128).collect(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Agency;
    use rcgen::{CertificateParams, DnType, KeyPair, SanType};

    fn cert(sans: &[&str], subject: &[(DnType, &str)]) -> Vec<u8> {
        let mut params = CertificateParams::default();
        params.subject_alt_names = sans
            .iter()
            .map(|uri| SanType::URI((*uri).try_into().unwrap()))
            .collect();
        for (kind, value) in subject {
            params.distinguished_name.push(kind.clone(), *value);
        }
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    fn uri_mapping() -> IdentityMapping {
        IdentityMapping::Uri {
            trust_domain: "gov.example".into(),
        }
    }

    #[test]
    fn a_uri_of_the_trust_domain_names_the_requester() {
        let der = cert(
            &[
                "https://housing.example/",
                "spiffe://gov.example/agency/housing/svc/transfer-window",
            ],
            &[],
        );
        assert_eq!(
            uri_mapping().requester_of(&der).unwrap(),
            Requester::new(Agency::Housing, "transfer-window")
        );
        let requester = Requester::new(Agency::ProvidentFund, "loan-desk");
        let der = cert(&[&IdentityMapping::uri_of("gov.example", &requester)], &[]);
        assert_eq!(uri_mapping().requester_of(&der).unwrap(), requester);
    }

    #[test]
    fn anything_else_names_no_requester() {
        for (sans, says) in [
            (vec![], "it has none"),
            (
                vec!["spiffe://other.example/agency/housing/svc/window"],
                "it has none",
            ),
            (
                vec![
                    "spiffe://gov.example/agency/housing/svc/a",
                    "spiffe://gov.example/agency/housing/svc/b",
                ],
                "it has 2",
            ),
            (
                vec!["spiffe://gov.example/agency/police/svc/window"],
                "unknown agency",
            ),
            (
                vec!["spiffe://gov.example/agency/housing/svc/Window"],
                "lowercase slug",
            ),
            (
                vec!["spiffe://gov.example/agency/housing/svc/a/b"],
                "/agency/<agency>/svc/<service>",
            ),
            (vec!["spiffe://gov.example/housing"], "/agency/<agency>"),
        ] {
            let err = uri_mapping().requester_of(&cert(&sans, &[])).unwrap_err();
            assert!(err.to_string().contains(says), "{sans:?}: {err}");
        }
        let err = uri_mapping()
            .requester_of(b"not a certificate")
            .unwrap_err();
        assert!(matches!(err, IdentityError::Unreadable(_)), "{err}");
    }

    #[test]
    fn the_subject_mapping_reads_organization_and_common_name() {
        let der = cert(
            &[],
            &[
                (DnType::OrganizationName, "public-security"),
                (DnType::CommonName, "move-window"),
            ],
        );
        assert_eq!(
            IdentityMapping::Subject.requester_of(&der).unwrap(),
            Requester::new(Agency::PublicSecurity, "move-window")
        );
        let der = cert(&[], &[(DnType::CommonName, "move-window")]);
        assert_eq!(
            IdentityMapping::Subject.requester_of(&der).unwrap_err(),
            IdentityError::Subject
        );
        let der = cert(
            &[],
            &[
                (DnType::OrganizationName, "Ministry"),
                (DnType::CommonName, "move-window"),
            ],
        );
        assert!(matches!(
            IdentityMapping::Subject.requester_of(&der).unwrap_err(),
            IdentityError::NotARequester { .. }
        ));
    }
}
