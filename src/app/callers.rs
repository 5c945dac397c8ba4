//! Who may call a process, decided in one place. With the TLS files set, the verified
//! client certificate names the requester. Without, only `dev`, `demo` and tests serve
//! (`insecure_requester_header`, which `dev` and `demo` turn on), taking the requester
//! from a metadata header; any other server refuses to start, for otherwise anyone
//! reaching a port could publish or look up as any agency. (`main` also refuses the
//! insecure flag for the server commands, so an operator cannot turn it on by mistake.)

use super::*;
use crate::identity::REQUESTER_HEADER;

/// How often the TLS files are checked for changes (`SIGHUP` reloads at once).
const TLS_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// How a process identifies its callers.
pub(super) struct Callers {
    /// The servers' TLS material; `None` serves plaintext (`dev`, `demo`, tests).
    pub(super) tls: Option<Arc<ServerTls>>,
    /// Where each call's requester comes from.
    pub(super) source: RequesterSource,
}

impl Callers {
    /// The callers of a process of `role` with `settings`: the TLS files loaded (a server
    /// whose certificate may not serve says so at once), or the insecure header where it
    /// is allowed.
    pub(super) fn of(
        settings: &Settings,
        role: Role,
        telemetry: &Telemetry,
    ) -> Result<Callers, AppError> {
        let files = settings
            .tls()
            .map_err(|e| AppError::Config(e.to_string()))?;
        let (tls, source) = match files {
            Some((files, mapping)) => (
                Some(ServerTls::load(files, mapping, telemetry.clone())?),
                RequesterSource::Certificate,
            ),
            None if settings.insecure_requester_header => (None, RequesterSource::InsecureHeader),
            // `dev` without the flag serves, but identifies nobody.
            None if role == Role::Dev => (None, RequesterSource::None),
            None => {
                return Err(AppError::Config(
                    "no TLS configured: set tls_cert, tls_key and tls_client_ca \
                     (GOVLINK_TLS_CERT, GOVLINK_TLS_KEY, GOVLINK_TLS_CLIENT_CA); `govlink certs \
                     init --out DIR` writes a development set (see docs/security.md)"
                        .into(),
                ));
            }
        };
        if source == RequesterSource::InsecureHeader {
            tracing::warn!(
                header = REQUESTER_HEADER,
                "calls take their requester from a metadata header, unchecked: anyone who can \
                 reach this port can claim any agency (dev, demo and tests only)"
            );
        }
        Ok(Callers { tls, source })
    }

    /// Supervises the reloading of the TLS files, if any.
    pub(super) fn watch(&self, parts: &mut Parts) {
        if let Some(tls) = &self.tls {
            let tls = Arc::clone(tls);
            parts.supervise("tls reload", move |stop| {
                tls.watch(TLS_CHECK_INTERVAL, stop)
            });
        }
    }
}
