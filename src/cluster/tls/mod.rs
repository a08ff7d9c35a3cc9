//! TLS between agents and the server: a CA the server generates on first
//! start (kept in the store, so it survives restarts and a restored store
//! keeps its identity), a server certificate signed by it for the names
//! agents use, and the agent-side verifier that pins the CA by the SHA-256
//! of its DER — the pin travels in the registration token
//! (`<secret>.<ca-sha256>`), so pasting the "Add Host" command is all the
//! trust setup a host needs, as with k3s's `K10<hash>::` tokens. A
//! pre-shared token without a pin is bound to the CA by [`ca_proof`].
//! [`listener`] serves HTTPS and, to this machine only, plain HTTP on one
//! port.

pub mod listener;

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
    /// argon2 refused its input (never for a token that fits in memory).
    #[error("cannot compute the CA proof")]
    Proof,
}

const CA_KEY: &str = "tls.ca.key";
const CA_CERT: &str = "tls.ca.cert";
const LEAF_KEY: &str = "tls.server.key";
const LEAF_CERT: &str = "tls.server.cert";
const LEAF_STAMP: &str = "tls.server.stamp";

/// The server's TLS material.
pub struct ServerTls {
    /// The CA certificate, PEM.
    pub ca_pem: String,
    /// SHA-256 of the CA certificate's DER, hex: the agents' pin.
    pub ca_hash: String,
    /// rustls configuration serving the chain (server cert, CA).
    pub config: Arc<rustls::ServerConfig>,
    /// The names and addresses the server certificate is valid for.
    pub names: Vec<String>,
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

/// The server certificate's validity: from last year to ten years on
/// (renewed on the first start in its last year).
fn leaf_years() -> (i32, i32) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // Days-exact dates do not matter here: a year of margin on each side.
    let year = 1970 + (secs / 31_556_952) as i32;
    (year - 1, year + 10)
}

/// Load the CA from the store (creating it on first start) and the server
/// certificate for `names` (plus localhost), signed by it. The certificate
/// and its key are kept in the store too and reused while the name set,
/// the CA and the validity stay the same; a changed name set (a new
/// address, a `--tls-san`) gets a new certificate from the same CA, so
/// agents' pins stay valid.
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
    let ca_der = pem_to_der(&ca_pem).ok_or(rcgen::Error::CouldNotParseCertificate)?;
    let ca_hash = sha256_hex(&ca_der);
    let mut sans: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    sans.extend(
        names
            .iter()
            .map(|n| n.trim().trim_start_matches('[').trim_end_matches(']'))
            .filter(|n| !n.is_empty())
            .map(str::to_string),
    );
    sans.sort();
    sans.dedup();
    let (from, until) = leaf_years();
    // What the stored certificate was made for: names, CA and last year.
    let stamp = format!("{}|{ca_hash}|{}", sans.join(","), until - 1);
    let stored = match (
        store.setting(LEAF_STAMP)?,
        store.setting(LEAF_KEY)?,
        store.setting(LEAF_CERT)?,
    ) {
        (Some(s), Some(k), Some(c)) if leaf_current(&s, &sans, &ca_hash, from + 1) => {
            pem_to_der(&c).map(|der| (k, der))
        }
        _ => None,
    };
    let (leaf_key_pem, leaf_der) = match stored {
        Some(x) => x,
        None => {
            // Same name and key as the stored CA: what it signs verifies
            // against it.
            let issuer = ca_params().self_signed(&key)?;
            let mut params = CertificateParams::new(sans.clone())?;
            params
                .distinguished_name
                .push(DnType::CommonName, "ros cluster server");
            params.not_before = rcgen::date_time_ymd(from, 1, 1);
            params.not_after = rcgen::date_time_ymd(until, 1, 1);
            let server_key = KeyPair::generate()?;
            let cert = params.signed_by(&server_key, &issuer, &key)?;
            store.set_setting(LEAF_KEY, &server_key.serialize_pem())?;
            store.set_setting(LEAF_CERT, &cert.pem())?;
            store.set_setting(LEAF_STAMP, &stamp)?;
            tracing::info!(names = %sans.join(","), "new server certificate from the cluster CA");
            (server_key.serialize_pem(), cert.der().to_vec())
        }
    };
    let server_key = KeyPair::from_pem(&leaf_key_pem)?;
    let chain = vec![
        CertificateDer::from(leaf_der),
        CertificateDer::from(ca_der.clone()),
    ];
    let pk = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, pk)?;
    Ok(ServerTls {
        ca_hash,
        ca_pem,
        config: Arc::new(config),
        names: sans,
    })
}

/// True when the stored certificate's stamp (`names|ca|last year`) is for
/// `sans` and `ca_hash` and still valid in `year`.
fn leaf_current(stamp: &str, sans: &[String], ca_hash: &str, year: i32) -> bool {
    let mut parts = stamp.split('|');
    let (Some(names), Some(ca), Some(last)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    names == sans.join(",") && ca == ca_hash && last.parse::<i32>().is_ok_and(|l| l > year)
}

/// Proof that a server knows the pre-shared join token, for agents that
/// were given the token without a CA pin (`ros.cluster.token` on every
/// node): argon2id of the token's secret, salted with the CA's SHA-256.
/// A server with another CA (a man in the middle) cannot compute it
/// without the token; the argon2 cost makes guessing a weak token from a
/// published proof slow. Hex, 32 bytes.
pub fn ca_proof(token: &str, ca_hash: &str) -> Result<String, TlsError> {
    let secret = crate::cluster::agent::token_pin(token)
        .map_or(token, |pin| &token[..token.len() - pin.len() - 1]);
    let mut salt = b"ros cluster CA proof v1 ".to_vec();
    salt.extend_from_slice(ca_hash.to_ascii_lowercase().as_bytes());
    let mut out = [0u8; 32];
    argon2::Argon2::default()
        .hash_password_into(secret.as_bytes(), &salt, &mut out)
        .map_err(|_| TlsError::Proof)?;
    Ok(hex::encode(out))
}

/// The header of `GET /v1/cacert` that carries [`ca_proof`].
pub const PROOF_HEADER: &str = "X-Ros-Ca-Proof";

/// The CA certificate of a PEM text, DER.
pub fn pem_der(pem: &str) -> Option<Vec<u8>> {
    let begin = pem.find("-----BEGIN CERTIFICATE-----")?;
    let rest = &pem[begin..];
    let end = rest.find("-----END CERTIFICATE-----")?;
    pem_to_der(&rest[..end])
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

/// Accepts any server certificate: only for fetching the CA certificate
/// whose proof or pin the agent checks next ([`ca_proof`]); nothing
/// secret is sent over such a connection.
#[derive(Debug)]
struct AnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
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
            &self.0.signature_verification_algorithms,
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
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A client configuration that does not check the server: for
/// `GET /v1/cacert` before the CA is known (see [`AnyCert`]).
pub fn unverified_client() -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let provider = provider();
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    Ok(Arc::new(config))
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

    #[test]
    fn the_server_certificate_changes_with_its_names_only() {
        let s = SqliteStore::memory().unwrap();
        let cert = |s: &SqliteStore| s.setting(LEAF_CERT).unwrap().unwrap();
        let a = load_or_create(&s, &["10.0.0.1".into(), "node1".into()]).unwrap();
        let first = cert(&s);
        assert!(a.names.contains(&"node1".to_string()), "{:?}", a.names);
        assert!(a.names.contains(&"127.0.0.1".to_string()));
        // The same names in another order: the same certificate.
        load_or_create(&s, &["node1".into(), "10.0.0.1".into(), "".into()]).unwrap();
        assert_eq!(cert(&s), first);
        // A new address: a new certificate from the same CA.
        let b =
            load_or_create(&s, &["10.0.0.1".into(), "node1".into(), "10.0.0.2".into()]).unwrap();
        assert_ne!(cert(&s), first);
        assert_eq!(a.ca_hash, b.ca_hash);
        assert!(!leaf_current("x|y|2000", &["x".into()], "y", 2001));
        assert!(leaf_current("x|y|2030", &["x".into()], "y", 2001));
        assert!(!leaf_current("x|z|2030", &["x".into()], "y", 2001));
        assert!(!leaf_current("garbage", &["x".into()], "y", 2001));
    }

    #[test]
    fn ca_proof_needs_the_token() {
        let ca = "ab".repeat(32);
        let p = ca_proof("join-secret", &ca).unwrap();
        assert_eq!(p.len(), 64);
        // The pin part of a token does not change the proof.
        assert_eq!(ca_proof(&format!("join-secret.{ca}"), &ca).unwrap(), p);
        assert_ne!(ca_proof("join-secreT", &ca).unwrap(), p);
        assert_ne!(ca_proof("join-secret", &"cd".repeat(32)).unwrap(), p);
        let pem = "junk\n-----BEGIN CERTIFICATE-----\nAAEC\n-----END CERTIFICATE-----\n";
        assert_eq!(pem_der(pem), Some(vec![0, 1, 2]));
        assert_eq!(pem_der("no certificate"), None);
    }
}
