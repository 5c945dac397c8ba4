//! The client side of mutual TLS, for govlink's own callers (`demo --tls`, `bench`, the
//! tests): a channel that presents one requester's certificate from a certificates
//! directory and trusts its CA.

use std::path::Path;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use super::certs::CertsDir;
use crate::identity::Requester;
/// Calls as the requesters of a certificates directory (`govlink certs init`).
#[derive(Debug, Clone)]
pub struct ClientTls {
    dir: CertsDir,
}

/// The name servers' certificates are checked against (loopback endpoints included).
const SERVER_NAME: &str = "localhost";

impl ClientTls {
    /// Clients with the certificates under `dir`.
    pub fn new(dir: impl AsRef<Path>) -> ClientTls {
        ClientTls {
            dir: CertsDir::new(dir.as_ref()),
        }
    }

    /// The certificates directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The TLS settings of a client calling as `requester`.
    pub fn config(&self, requester: &Requester) -> std::io::Result<ClientTlsConfig> {
        let issued = self.dir.client(requester);
        let read = |path: &Path| {
            std::fs::read(path)
                .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
        };
        Ok(ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(read(&self.dir.ca())?))
            .identity(Identity::from_pem(read(&issued.cert)?, read(&issued.key)?))
            .domain_name(SERVER_NAME))
    }

    /// The endpoint `addr` (`host:port`) for calls as `requester`.
    pub fn endpoint(&self, addr: &str, requester: &Requester) -> anyhow::Result<Endpoint> {
        Ok(
            Endpoint::from_shared(format!("https://{addr}"))?
                .tls_config(self.config(requester)?)?,
        )
    }

    /// A channel to `addr` calling as `requester`, connected.
    pub async fn connect(&self, addr: &str, requester: &Requester) -> anyhow::Result<Channel> {
        Ok(self.endpoint(addr, requester)?.connect().await?)
    }

    /// A channel to `addr` calling as `requester`, connecting at its first call.
    pub fn lazy(&self, addr: &str, requester: &Requester) -> anyhow::Result<Channel> {
        Ok(self.endpoint(addr, requester)?.connect_lazy())
    }
}
