//! Mutual TLS in the deployment files: every server is given all of its TLS files (the
//! servers refuse to start without them) and no insecure requester header, each file
//! is the one `govlink certs init` writes under that name, and it is where a volume is
//! mounted. The compose file and the Kubernetes manifests call these per server; the
//! development certificates themselves are made by running the binary.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use govlink::config::Settings;
use govlink::tls::certs::CertsDir;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

/// The settings that name TLS files, as (setting, its variable).
pub(crate) const FILE_SETTINGS: [(&str, &str); 4] = [
    ("tls_cert", "GOVLINK_TLS_CERT"),
    ("tls_key", "GOVLINK_TLS_KEY"),
    ("tls_client_ca", "GOVLINK_TLS_CLIENT_CA"),
    ("tls_crl", "GOVLINK_TLS_CRL"),
];

/// The variable only `govlink dev` and `demo` may use.
pub(crate) const INSECURE: &str = "GOVLINK_INSECURE_REQUESTER_HEADER";

/// The TLS files of a server's settings, by setting name; panics naming `whose` unless the
/// server would start secured: all four files (the CRL too, so revocation works) and
/// no insecure requester header.
pub(crate) fn server_files(
    settings: &Settings,
    env: &BTreeMap<String, String>,
    whose: &str,
) -> BTreeMap<&'static str, String> {
    assert!(
        !env.contains_key(INSECURE),
        "{whose}: sets {INSECURE}, which the servers refuse (only `govlink dev` and `demo` \
         take a requester from a header)"
    );
    assert!(
        !settings.insecure_requester_header,
        "{whose}: insecure_requester_header is on; the servers refuse to start with it"
    );
    let tls = settings
        .tls()
        .unwrap_or_else(|e| panic!("{whose}: {e}"))
        .unwrap_or_else(|| {
            panic!(
                "{whose}: no TLS (GOVLINK_TLS_CERT, GOVLINK_TLS_KEY, GOVLINK_TLS_CLIENT_CA): \
                 the servers refuse to start without it"
            )
        });
    let (files, _) = tls;
    let crl = files.crl.unwrap_or_else(|| {
        panic!("{whose}: no GOVLINK_TLS_CRL: a revoked client certificate would still be accepted")
    });
    let text = |p: PathBuf| p.display().to_string();
    BTreeMap::from([
        ("tls_cert", text(files.cert)),
        ("tls_key", text(files.key)),
        ("tls_client_ca", text(files.client_ca)),
        ("tls_crl", text(crl)),
    ])
}

/// The file `certs init --out dir` writes for each TLS setting.
pub(crate) fn certs_layout(dir: &Path) -> BTreeMap<&'static str, PathBuf> {
    let certs = CertsDir::new(dir);
    BTreeMap::from([
        ("tls_cert", certs.server().cert),
        ("tls_key", certs.server().key),
        ("tls_client_ca", certs.ca()),
        ("tls_crl", certs.crl()),
    ])
}

/// A directory under the target's temporary directory, removed when dropped.
pub(crate) struct Scratch(PathBuf);

impl Scratch {
    pub(crate) fn new(what: &str) -> Scratch {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "deploy-drift-{what}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch directory");
        Scratch(dir)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `govlink certs init --out <out>` as the deployment files do; panics naming
/// `whose` if the binary refuses.
pub(crate) fn certs_init(out: &Path, whose: &str) {
    let output = Command::new(env!("CARGO_BIN_EXE_govlink"))
        .args(["certs", "init", "--out"])
        .arg(out)
        .output()
        .expect("running govlink");
    assert!(
        output.status.success(),
        "{whose}: `govlink certs init --out {}` failed: {}",
        out.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The word after `flag` in `words` (e.g. the directory of `--out DIR`).
pub(crate) fn after<'w>(words: &[&'w str], flag: &str) -> Option<&'w str> {
    words
        .iter()
        .position(|w| *w == flag)
        .and_then(|at| words.get(at + 1))
        .copied()
}

/// The words of a shell line, with quotes and the `;` that ends a command dropped.
pub(crate) fn shell_words(line: &str) -> Vec<&str> {
    line.split_whitespace()
        .map(|w| w.trim_matches(|c| matches!(c, '\'' | '"' | ';')))
        .filter(|w| !w.is_empty())
        .collect()
}

/// The directory of the `certs init --out DIR` in `text`, if it runs one.
pub(crate) fn certs_init_out(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let words = shell_words(line);
        let at = words
            .windows(2)
            .position(|pair| pair == ["certs", "init"])?;
        after(&words[at..], "--out").map(str::to_owned)
    })
}

/// The DNS and IP names of the server certificate `certs init` wrote to `dir`.
pub(crate) fn server_names(dir: &Path) -> Vec<String> {
    let pem = std::fs::read(CertsDir::new(dir).server().cert).expect("server.pem");
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).expect("server.pem is PEM");
    let (_, cert) =
        x509_parser::certificate::X509Certificate::from_der(&pem.contents).expect("a certificate");
    let san = cert
        .subject_alternative_name()
        .expect("one SAN extension")
        .expect("server.pem has SANs");
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(name) => Some((*name).to_owned()),
            GeneralName::IPAddress(ip) => match ip.len() {
                4 => Some(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*ip).ok()?).to_string()),
                16 => Some(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*ip).ok()?).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

#[test]
fn the_helpers_read_shell_lines_as_the_deployment_files_write_them() {
    assert_eq!(
        certs_init_out(
            "if [ -e /certs/ca.pem ]; then echo kept; else exec govlink certs init --out /certs; fi"
        )
        .as_deref(),
        Some("/certs")
    );
    assert_eq!(
        certs_init_out("  govlink certs init --out govlink-certs").as_deref(),
        Some("govlink-certs")
    );
    assert_eq!(certs_init_out("govlink certs issue --dir /certs a/b"), None);
}
