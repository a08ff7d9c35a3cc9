//! TLS between agents and the server: a CA the server generates on first
//! start (kept in the store, so it survives restarts and a restored store
//! keeps its identity), a server certificate signed by it for the names
//! agents use, and the agent-side verifier that pins the CA by the SHA-256
//! of its DER — the pin travels in the registration token
//! (`<secret>.<ca-sha256>`), so pasting the "Add Host" command is all the
//! trust setup a host needs, as with k3s's `K10<hash>::` tokens.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::store::{Store, StoreError};

/// TLS failures.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Generating a key or certificate failed.
    #[error("cannot generate the cluster CA or certificate")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the configuration.
    #[error("invalid TLS configuration")]
    Config(#[from] rustls::Error),
    /// The store failed.
    #[error("store")]
    Store(#[from] StoreError),
}

const CA_KEY: &str = "tls.ca.key";
const CA_CERT: &str = "tls.ca.cert";

/// The server's TLS material.
pub struct ServerTls {
    /// The CA certificate, PEM.
    pub ca_pem: String,
    /// SHA-256 of the CA certificate's DER, hex: the agents' pin.
    pub ca_hash: String,
    /// rustls configuration serving the chain (server cert, CA).
    pub config: Arc<rustls::ServerConfig>,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Hex SHA-256 of `der`.
pub fn sha256_hex(der: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn ca_params() -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "ros cluster CA");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = rcgen::date_time_ymd(2024, 1, 1);
    p.not_after = rcgen::date_time_ymd(2124, 1, 1);
    p
}

/// Load the CA from the store (creating it on first start) and sign a
/// fresh server certificate for `names` (plus localhost).
pub fn load_or_create(store: &dyn Store, names: &[String]) -> Result<ServerTls, TlsError> {
    let (key, ca_pem) = match (store.setting(CA_KEY)?, store.setting(CA_CERT)?) {
        (Some(k), Some(c)) => (KeyPair::from_pem(&k)?, c),
        _ => {
            let key = KeyPair::generate()?;
            let cert = ca_params().self_signed(&key)?;
            store.set_setting(CA_KEY, &key.serialize_pem())?;
            store.set_setting(CA_CERT, &cert.pem())?;
            (key, cert.pem())
        }
    };
    // Same name and key as the stored CA: what it signs verifies against it.
    let issuer = ca_params().self_signed(&key)?;
    let ca_der = pem_to_der(&ca_pem).ok_or(rcgen::Error::CouldNotParseCertificate)?;
    let mut sans: Vec<String> = vec!["localhost".into(), "127.0.0.1".into()];
    sans.extend(names.iter().filter(|n| !n.is_empty()).cloned());
    sans.sort();
    sans.dedup();
    let mut params = CertificateParams::new(sans)?;
    params
        .distinguished_name
        .push(DnType::CommonName, "ros cluster server");
    let server_key = KeyPair::generate()?;
    let cert = params.signed_by(&server_key, &issuer, &key)?;
    let chain = vec![cert.der().clone(), CertificateDer::from(ca_der.clone())];
    let pk = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, pk)?;
    Ok(ServerTls {
        ca_hash: sha256_hex(&ca_der),
        ca_pem,
        config: Arc::new(config),
    })
}

fn pem_to_der(pem: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

/// Verifies a server whose chain contains the CA with the pinned hash, then
/// checks the chain and name against that CA like any TLS client.
#[derive(Debug)]
pub struct PinnedCa {
    pin: String,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ca = intermediates
            .iter()
            .find(|c| sha256_hex(c.as_ref()) == self.pin)
            .ok_or_else(|| {
                // Say why: the agent's log is where an operator looks.
                let got: Vec<String> = intermediates
                    .iter()
                    .map(|c| sha256_hex(c.as_ref()))
                    .collect();
                rustls::Error::General(format!(
                    "the server's certificate is not from the pinned cluster CA {} (it presents CA {}): \
                     another server or a man in the middle; check the token's pin",
                    self.pin,
                    if got.is_empty() { "none".to_string() } else { got.join(", ") }
                ))
            })?;
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                .build()
                .map_err(|e| rustls::Error::General(e.to_string()))?;
        verifier.verify_server_cert(end_entity, &[], server_name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A client configuration trusting only the CA whose SHA-256 is `pin`.
pub fn pinned_client(pin: &str) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let provider = provider();
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedCa {
            pin: pin.to_ascii_lowercase(),
            provider,
        }))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Serving TLS with axum: handshakes run in their own tasks (a slow client
/// cannot stall accepts) and finished streams are handed to axum.
pub struct TlsListener {
    rx: tokio::sync::mpsc::Receiver<(
        tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
        std::net::SocketAddr,
    )>,
    addr: std::net::SocketAddr,
}

impl TlsListener {
    /// Accept TLS on `tcp` with `config`.
    pub fn new(
        tcp: tokio::net::TcpListener,
        config: Arc<rustls::ServerConfig>,
    ) -> std::io::Result<TlsListener> {
        let addr = tcp.local_addr()?;
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        tokio::spawn(async move {
            loop {
                let (sock, peer) = match tcp.accept().await {
                    Ok(x) => x,
                    Err(_) => {
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let hs = tokio::time::timeout(
                        std::time::Duration::from_secs(10),
                        acceptor.accept(sock),
                    )
                    .await;
                    if let Ok(Ok(stream)) = hs {
                        let _ = tx.send((stream, peer)).await;
                    }
                });
            }
        });
        Ok(TlsListener { rx, addr })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            if let Some(x) = self.rx.recv().await {
                return x;
            }
            // The accept task ended (it never does on its own): stay idle.
            std::future::pending::<()>().await;
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.addr)
    }
}

/// The client address of a TLS connection (axum's `ConnectInfo` for
/// [`TlsListener`]).
#[derive(Clone, Copy, Debug)]
pub struct TlsPeer(pub std::net::SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsListener>>
    for TlsPeer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, TlsListener>) -> Self {
        TlsPeer(*stream.remote_addr())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::store::SqliteStore;

    #[test]
    fn ca_is_stable_and_pin_checks() {
        let s = SqliteStore::memory().unwrap();
        let a = load_or_create(&s, &["10.0.0.1".into()]).unwrap();
        let b = load_or_create(&s, &["node.example".into()]).unwrap();
        assert_eq!(a.ca_hash, b.ca_hash, "the CA survives restarts");
        assert_eq!(a.ca_hash.len(), 64);
        assert!(pinned_client(&a.ca_hash).is_ok());
    }
}
