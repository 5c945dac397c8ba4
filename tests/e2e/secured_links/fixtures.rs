//! What the secured-link tests run against: a CA of their own and its certificates, a
//! redis-server that only speaks TLS and knows one ACL user, a Tansu broker that asks for
//! SCRAM credentials, and a TLS-terminating proxy in front of a broker (Tansu 0.6.0 serves
//! no TLS itself: its `--cert`/`--key` are read but its listener stays plain).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use govlink::kafka::SaslMechanism;
use govlink::redis_link::RedisLink;
use govlink::secret::Secret;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig, crypto};

use crate::faults::free_port;
use crate::helpers::unique;

/// A CA of the test's own, with a server certificate (for `localhost` and 127.0.0.1) and a
/// client certificate, as PEM files in a directory removed on drop.
pub struct Pki {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl Pki {
    pub fn new() -> Pki {
        let dir = std::env::temp_dir().join(unique("govlink-pki"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "govlink test ca");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let write = |name: &str, pem: String| {
            let path = dir.join(name);
            std::fs::write(&path, pem).unwrap();
            path
        };
        let leaf = |name: &str, purpose: ExtendedKeyUsagePurpose| {
            let sans = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
            let mut params = CertificateParams::new(sans).unwrap();
            params.distinguished_name.push(DnType::CommonName, name);
            params.extended_key_usages = vec![purpose];
            let key = KeyPair::generate().unwrap();
            let cert = params.signed_by(&key, &ca).unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (server_cert, server_key) = leaf("localhost", ExtendedKeyUsagePurpose::ServerAuth);
        let (client_cert, client_key) = leaf("govlink", ExtendedKeyUsagePurpose::ClientAuth);
        Pki {
            ca: write("ca.pem", ca.pem()),
            server_cert: write("server.pem", server_cert),
            server_key: write("server.key", server_key),
            client_cert: write("client.pem", client_cert),
            client_key: write("client.key", client_key),
            dir,
        }
    }

    /// The text of a PEM file, e.g. the client key, to look for in output.
    pub fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A password no other run uses.
pub fn password(what: &str) -> String {
    format!("{what}-{}", uuid::Uuid::new_v4().simple())
}

/// A redis-server of the test's own that accepts only TLS (no plain port), and only the
/// ACL user `user` (the default user is off).
pub struct TlsRedis {
    child: Child,
    pub port: u16,
    dir: PathBuf,
}

impl TlsRedis {
    pub async fn start(pki: &Pki, user: &str, password: &str) -> TlsRedis {
        let dir = std::env::temp_dir().join(unique("govlink-tls-redis"));
        std::fs::create_dir_all(&dir).unwrap();
        let acl = dir.join("users.acl");
        std::fs::write(
            &acl,
            format!("user default off\nuser {user} on >{password} ~* &* +@all\n"),
        )
        .unwrap();
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", "0"])
            .args(["--tls-port", &port.to_string(), "--tls-auth-clients", "no"])
            .arg("--tls-cert-file")
            .arg(&pki.server_cert)
            .arg("--tls-key-file")
            .arg(&pki.server_key)
            .arg("--tls-ca-cert-file")
            .arg(&pki.ca)
            .arg("--aclfile")
            .arg(&acl)
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let redis = TlsRedis { child, port, dir };
        // This test process is a Redis client over TLS as a govlink process is.
        govlink::tls::install_process_provider();
        let link = redis.link(pki, user, password);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut conn) = link
                .client()
                .unwrap()
                .get_multiplexed_async_connection()
                .await
                && redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok()
            {
                return redis;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server (tls) did not start"
            );
            sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self) -> String {
        format!("rediss://localhost:{}/", self.port)
    }

    /// The link as govlink's settings would describe it.
    pub fn link(&self, pki: &Pki, user: &str, password: &str) -> RedisLink {
        RedisLink::new(self.url()).with_login(
            Some(pki.ca.display().to_string()),
            Some(user.to_owned()),
            Some(Secret::new(password)),
        )
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The tansu binary the suite's broker runs.
fn tansu_bin() -> PathBuf {
    std::env::var_os("GOVLINK_TEST_TANSU_BIN").map_or_else(
        || {
            let home = std::env::var_os("CARGO_HOME").map_or_else(
                || PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cargo"),
                PathBuf::from,
            );
            home.join("bin/tansu")
        },
        PathBuf::from,
    )
}

/// A Tansu broker of the test's own on SQLite storage that asks every client for SASL
/// credentials and knows one SCRAM user.
pub struct SaslBroker {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
}

impl SaslBroker {
    /// Starts a broker on loopback `port`, registers `user` while it does not ask for
    /// credentials yet (Tansu's `user create` cannot authenticate), then starts it again
    /// asking for them. Clients are told to reach it at `advertised` (`host:port`, e.g. a
    /// proxy in front of it), or at its own address.
    pub async fn start(
        port: u16,
        (user, password, mechanism): (&str, &str, SaslMechanism),
        advertised: Option<String>,
    ) -> SaslBroker {
        let mechanism = match mechanism {
            SaslMechanism::ScramSha256 => "scram256",
            SaslMechanism::ScramSha512 => "scram512",
            SaslMechanism::Plain => panic!("the broker keeps SCRAM users only"),
        };
        let dir = std::env::temp_dir().join(unique("govlink-sasl-tansu"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut broker = SaslBroker {
            child: None,
            port,
            dir,
        };
        let own = format!("127.0.0.1:{port}");
        broker.run(&own, false).await;
        let created = Command::new(tansu_bin())
            .args(["user", "create", "--broker", &format!("tcp://{own}")])
            .args([user, password, "--mechanism", mechanism])
            .stdin(Stdio::null())
            .output()
            .expect("tansu user create runs");
        assert!(
            created.status.success(),
            "tansu user create: {}",
            String::from_utf8_lossy(&created.stderr)
        );
        broker.stop();
        broker
            .run(advertised.as_deref().unwrap_or(&own), true)
            .await;
        broker
    }

    async fn run(&mut self, advertised: &str, authentication: bool) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("tansu.log"))
            .unwrap();
        let mut command = Command::new(tansu_bin());
        command
            .current_dir(&self.dir)
            .env_remove("SCHEMA_REGISTRY")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env("RUST_LOG", "warn")
            .args(["broker", "--cluster-id", "govlink-test", "--listener-url"])
            .arg(format!("tcp://127.0.0.1:{}", self.port))
            .arg("--advertised-listener-url")
            .arg(format!("tcp://{advertised}"))
            // Relative to the working directory: tansu joins an absolute path onto it.
            .args(["--storage-engine", "sqlite://tansu.db"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if authentication {
            command.arg("--authentication");
        }
        self.child = Some(command.spawn().expect("tansu starts"));
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", self.port)).await.is_err() {
            let exited = self.child.as_mut().unwrap().try_wait().unwrap();
            assert!(exited.is_none(), "tansu exited: see {}", self.dir.display());
            assert!(Instant::now() < deadline, "tansu not listening after 60 s");
            sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then waits: the user it registered is on disk.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for SaslBroker {
    fn drop(&mut self) {
        self.stop();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A TLS-terminating proxy on a loopback port: it accepts only TLS clients presenting a
/// certificate of the test's CA and forwards their bytes to `upstream`.
pub struct TlsProxy {
    pub port: u16,
    /// TLS sessions that completed their handshake (with a client certificate).
    pub sessions: Arc<AtomicUsize>,
    /// Connections whose handshake failed (a client that does not speak TLS, or has no
    /// certificate the CA signed).
    pub refused: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl TlsProxy {
    pub async fn start(pki: &Pki, upstream: u16) -> TlsProxy {
        let provider = Arc::new(crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&pki.ca).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .unwrap();
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&pki.server_cert)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let key = PrivateKeyDer::from_pem_file(&pki.server_key).unwrap();
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)
            .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (sessions, refused) = (Arc::default(), Arc::default());
        let task = tokio::spawn(serve(
            listener,
            acceptor,
            upstream,
            Arc::clone(&sessions),
            Arc::clone(&refused),
        ));
        TlsProxy {
            port,
            sessions,
            refused,
            task,
        }
    }
}

async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    upstream: u16,
    sessions: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
) {
    // Dropped (aborting every connection) when the proxy's task is aborted.
    let mut connections = tokio::task::JoinSet::new();
    while let Ok((socket, _)) = listener.accept().await {
        let (acceptor, sessions, refused) = (acceptor.clone(), sessions.clone(), refused.clone());
        connections.spawn(async move {
            let Ok(mut tls) = acceptor.accept(socket).await else {
                refused.fetch_add(1, Ordering::SeqCst);
                return;
            };
            sessions.fetch_add(1, Ordering::SeqCst);
            if let Ok(mut broker) = TcpStream::connect(("127.0.0.1", upstream)).await {
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut broker).await;
            }
        });
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
