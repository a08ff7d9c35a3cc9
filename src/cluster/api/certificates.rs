//! The `certificate` resource (Rancher's): a TLS certificate with its
//! optional chain and its private key, which load balancers terminate
//! `https` and `tls` port rules with (`lbConfig.certificateIds`,
//! `defaultCertificateId`). The key is write-only: it is kept in the
//! row's hidden `_key` and never rendered; only the load balancer
//! containers' agents receive it (`DesiredInstance::lb_certificates`).
//! A certificate is checked before it is stored: PEM that parses, a key
//! that is the certificate's own.

use serde_json::{Map, Value};

use super::ctx::{name_taken, Ctx};
use super::{render, ApiError};
use crate::cluster::model::{parse_id, Kind, Resource};
use crate::cluster::plan::rows::spec_of;
use crate::cluster::protocol::{DesiredInstance, LbCertificate};
use crate::cluster::store::{Scope, Store};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The row field holding the private key (hidden: `_` fields are never
/// rendered).
const KEY_FIELD: &str = "_key";

fn bad(field: &str, msg: String) -> ApiError {
    ApiError::field("InvalidFormat", field, msg)
}

fn certs(field: &str, pem: &str) -> Result<Vec<CertificateDer<'static>>, ApiError> {
    let list: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| bad(field, format!("{field}: not valid PEM: {e}")))?;
    if list.is_empty() {
        return Err(bad(
            field,
            format!("{field}: no PEM certificate in it (-----BEGIN CERTIFICATE-----)"),
        ));
    }
    for (i, c) in list.iter().enumerate() {
        rustls::server::ParsedCertificate::try_from(c).map_err(|e| {
            bad(
                field,
                format!(
                    "{field}: certificate {} is not a valid X.509 certificate: {e}",
                    i + 1
                ),
            )
        })?;
    }
    Ok(list)
}

/// Check that `cert` (PEM; the first certificate is the server's), the
/// optional `chain` and `key` (a PEM private key) belong together; the
/// SHA-256 fingerprint of the certificate, as `AB:CD:…`.
pub fn check(cert: &str, chain: Option<&str>, key: &str) -> Result<String, ApiError> {
    let mut list = certs("cert", cert)?;
    if let Some(c) = chain.filter(|c| !c.trim().is_empty()) {
        list.extend(certs("certChain", c)?);
    }
    let k = PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(|e| {
        bad(
            "key",
            format!("key: not a PEM private key (PKCS#8, RSA or EC): {e}"),
        )
    })?;
    let fp = ring::digest::digest(&ring::digest::SHA256, list[0].as_ref());
    let provider = rustls::crypto::ring::default_provider();
    rustls::sign::CertifiedKey::from_der(list, k, &provider).map_err(|e| {
        bad(
            "key",
            format!("key: does not go with cert, or is of a kind HAProxy here cannot use: {e}"),
        )
    })?;
    Ok(fp
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":"))
}

fn text<'a>(f: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    f.get(k).and_then(Value::as_str)
}

/// Check `f` (create or update fields) against `r`'s stored values and
/// put them on `r`, the key into its hidden field.
fn apply(r: &mut Resource, mut f: Map<String, Value>) -> Result<(), ApiError> {
    let cert = text(&f, "cert").or(r.str("cert")).map(str::to_string);
    let key = text(&f, "key").or(r.str(KEY_FIELD)).map(str::to_string);
    let chain = match f.get("certChain") {
        Some(v) => v.as_str().map(str::to_string),
        None => r.str("certChain").map(str::to_string),
    };
    let Some(cert) = cert else {
        return Err(ApiError::field(
            "MissingRequired",
            "cert",
            "cert is required (the PEM certificate)",
        ));
    };
    let Some(key) = key else {
        return Err(ApiError::field(
            "MissingRequired",
            "key",
            "key is required (the PEM private key)",
        ));
    };
    let fp = check(&cert, chain.as_deref(), &key)?;
    f.remove("key");
    r.data.extend(f);
    r.set(KEY_FIELD, key);
    r.set("certFingerprint", fp);
    Ok(())
}

/// `POST …/certificates`.
pub fn create(cx: &Ctx<'_>, project: u64, f: Map<String, Value>) -> Result<Value, ApiError> {
    let name = text(&f, "name").unwrap_or_default().to_string();
    if name_taken(cx, Kind::Certificate, Some(project), &name, 0)? {
        return Err(ApiError::field(
            "NotUnique",
            "name",
            format!("name {name:?} is taken"),
        ));
    }
    let store = &cx.app.store;
    let mut r = Resource::new(
        Kind::Certificate,
        store.allocate(Kind::Certificate)?,
        project,
        "active",
    );
    apply(&mut r, f)?;
    r.set("kind", "certificate");
    cx.app.commit(std::slice::from_ref(&r))?;
    Ok(render::resource(cx.base, &r))
}

/// `PUT …/certificates/{id}`: a renewed certificate reaches the load
/// balancers that use it at their next sync, which is asked for at once.
pub fn update(cx: &Ctx<'_>, r: &mut Resource, f: Map<String, Value>) -> Result<(), ApiError> {
    if let Some(name) = text(&f, "name") {
        if name_taken(cx, Kind::Certificate, Some(r.project), name, r.id)? {
            return Err(ApiError::field(
                "NotUnique",
                "name",
                format!("name {name:?} is taken"),
            ));
        }
    }
    apply(r, f)?;
    let hosts: Vec<u64> = cx
        .app
        .store
        .list(Kind::Host, Scope::Project(r.project))?
        .iter()
        .filter(|h| !h.is_removed())
        .map(|h| h.id)
        .collect();
    cx.app.wake.hosts(hosts);
    Ok(())
}

/// Refuse to remove a certificate a live load balancer names (its https
/// listeners would go without one).
pub fn check_unused(cx: &Ctx<'_>, cert: &Resource) -> Result<(), ApiError> {
    let name = cert.str("name").unwrap_or_default();
    for s in cx
        .app
        .store
        .list(Kind::Service, Scope::Project(cert.project))?
        .iter()
        .filter(|s| !s.is_removed())
    {
        let Some(lb) = spec_of(s, "_spec").and_then(|sp| sp.lb_config) else {
            continue;
        };
        if lb.certificates.iter().any(|n| n == name)
            || lb.default_certificate.as_deref() == Some(name)
        {
            return Err(ApiError::new(
                422,
                "InvalidState",
                format!(
                    "certificate {name} ({}) is used by load balancer {} ({}): change its lbConfig first",
                    cert.api_id(),
                    s.str("name").unwrap_or_default(),
                    s.api_id()
                ),
            ));
        }
    }
    Ok(())
}

/// The live certificates of `project`.
pub fn list(cx: &Ctx<'_>, project: u64) -> Result<Vec<Resource>, ApiError> {
    Ok(cx
        .app
        .store
        .list(Kind::Certificate, Scope::Project(project))?
        .into_iter()
        .filter(|c| !c.is_removed())
        .collect())
}

/// What a load balancer container's agent gets of the certificates its
/// service names (by name, in order; the default one flagged).
pub fn for_lb(certs: &[Resource], names: &[String], default: Option<&str>) -> Vec<LbCertificate> {
    let mut out: Vec<LbCertificate> = Vec::new();
    let wanted = default.into_iter().chain(names.iter().map(String::as_str));
    for name in wanted {
        if out.iter().any(|c| c.name == name) {
            continue;
        }
        let Some(c) = certs.iter().find(|c| c.str("name") == Some(name)) else {
            continue;
        };
        let mut pem = String::new();
        for part in [c.str("cert"), c.str("certChain"), c.str(KEY_FIELD)]
            .into_iter()
            .flatten()
        {
            pem.push_str(part.trim_end());
            pem.push('\n');
        }
        out.push(LbCertificate {
            name: name.to_string(),
            pem,
            default: default == Some(name),
        });
    }
    out
}

/// Give each load balancer container among `instances` (built from
/// `rows`, in the same order) the certificates its service names.
pub fn attach(
    store: &dyn Store,
    project: u64,
    rows: &[Resource],
    instances: &mut [DesiredInstance],
) -> Result<(), ApiError> {
    let mut certs: Option<Vec<Resource>> = None;
    for (c, d) in rows.iter().zip(instances.iter_mut()) {
        if c.data.get("_lb").and_then(Value::as_bool) != Some(true) {
            continue;
        }
        let Some(svc) = c
            .str("serviceId")
            .and_then(|s| parse_id(Kind::Service, s))
            .map(|n| store.get(Kind::Service, n))
            .transpose()?
            .flatten()
        else {
            continue;
        };
        let Some(lb) = spec_of(&svc, "_spec").and_then(|s| s.lb_config) else {
            continue;
        };
        if lb.certificates.is_empty() && lb.default_certificate.is_none() {
            continue;
        }
        let all = match &mut certs {
            Some(v) => v,
            None => certs.insert(
                store
                    .list(Kind::Certificate, Scope::Project(project))?
                    .into_iter()
                    .filter(|c| !c.is_removed())
                    .collect(),
            ),
        };
        d.lb_certificates = for_lb(all, &lb.certificates, lb.default_certificate.as_deref());
    }
    Ok(())
}

/// The certificate of id `id` (`1c4`) among `certs`: its name.
pub fn name_of(certs: &[Resource], id: &str) -> Option<String> {
    certs
        .iter()
        .find(|c| c.api_id() == id)
        .and_then(|c| c.str("name"))
        .map(str::to_string)
}

/// The id of the certificate named `name` among `certs`.
pub fn id_of(certs: &[Resource], name: &str) -> Option<String> {
    certs
        .iter()
        .find(|c| c.str("name") == Some(name))
        .map(Resource::api_id)
}

/// Rendered like [`render::resource`], for tests.
#[cfg(test)]
fn shown(r: &Resource) -> Value {
    render::resource("http://x/v1", r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn self_signed(host: &str) -> (String, String) {
        let c = rcgen::generate_simple_self_signed(vec![host.to_string()]).unwrap();
        (c.cert.pem(), c.key_pair.serialize_pem())
    }

    #[test]
    fn pem_is_checked_and_the_key_never_shown() {
        let (cert, key) = self_signed("a.example.com");
        let (other_cert, other_key) = self_signed("b.example.com");
        let fp = check(&cert, None, &key).unwrap();
        assert_eq!(fp.len(), 32 * 3 - 1, "{fp}");
        let rows: &[(&str, Option<&str>, &str, &str, &str)] = &[
            (
                "garbage",
                None,
                &key,
                "cert",
                "cert: no PEM certificate in it",
            ),
            (
                &cert,
                Some("nope"),
                &key,
                "certChain",
                "certChain: no PEM certificate",
            ),
            (&cert, None, "garbage", "key", "key: not a PEM private key"),
            (&cert, None, &other_key, "key", "key: does not go with cert"),
        ];
        for (c, chain, k, field, want) in rows {
            let e = check(c, *chain, k).unwrap_err();
            assert_eq!(
                (e.status, e.field.as_deref()),
                (422, Some(*field)),
                "{want}"
            );
            assert!(e.message.starts_with(want), "{} vs {want}", e.message);
        }
        assert!(check(&other_cert, Some(&cert), &other_key).is_ok());

        let mut r = Resource::new(Kind::Certificate, 3, 5, "active");
        let f = json!({"name": "site", "cert": cert, "key": key});
        apply(&mut r, f.as_object().unwrap().clone()).unwrap();
        let v = shown(&r);
        assert_eq!(v["certFingerprint"], json!(fp));
        assert!(v.get("key").is_none() && v.get("_key").is_none(), "{v}");
        assert!(!v.to_string().contains("PRIVATE KEY"), "{v}");
        // An update of the name alone keeps the stored key and cert.
        apply(
            &mut r,
            json!({"name": "site2"}).as_object().unwrap().clone(),
        )
        .unwrap();
        let lb = for_lb(&[r.clone()], &["site2".into()], Some("site2"));
        assert_eq!(lb.len(), 1);
        assert!(lb[0].default);
        assert!(lb[0].pem.contains("BEGIN CERTIFICATE") && lb[0].pem.contains("PRIVATE KEY"));
        assert_eq!(name_of(&[r.clone()], "1c3").as_deref(), Some("site2"));
    }
}
