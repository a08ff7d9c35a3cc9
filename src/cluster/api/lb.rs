//! The load balancer service in the API (`loadBalancerService`): its
//! `lbConfig` read from a request (Rancher's camelCase names, targets by
//! `serviceId` or by name) and checked with the refusals users see as 422s
//! naming the rule and field; and the `lbConfig` written on the service row.
//! Certificates are kept by name in the spec and shown by id
//! (`certificateIds`, `defaultCertificateId`).

use serde_json::{json, Map, Value};

use super::ApiError;
use crate::cluster::model::{parse_id, Kind, Resource};
use crate::cluster::plan::compose::{LbConfig, PortRule, LB_RESERVED_PORT};

/// The protocols HAProxy balances.
const PROTOCOLS: &[&str] = &["http", "tcp", "https", "tls", "sni"];

/// Refuse rules HAProxy cannot serve: UDP, the reserved check port, and two
/// rules on one source port with different protocols (both named).
pub fn check_rules(rules: &[PortRule]) -> Result<(), ApiError> {
    for (i, r) in rules.iter().enumerate() {
        let at = format!("lbConfig.portRules[{i}]");
        if r.protocol == "udp" {
            return Err(ApiError::field(
                "InvalidOption",
                "lbConfig",
                format!("{at}.protocol: protocol udp: HAProxy cannot balance UDP (use http, tcp, https, tls or sni)"),
            ));
        }
        if !PROTOCOLS.contains(&r.protocol.as_str()) {
            return Err(ApiError::field(
                "InvalidOption",
                "lbConfig",
                format!(
                    "{at}.protocol: protocol {:?} is not one of http, tcp, https, tls, sni",
                    r.protocol
                ),
            ));
        }
        if r.source_port == 0 {
            return Err(ApiError::field(
                "MissingRequired",
                "lbConfig",
                format!("{at}.sourcePort: a port rule needs a sourcePort (1-65535)"),
            ));
        }
        if r.source_port == LB_RESERVED_PORT {
            return Err(ApiError::field(
                "InvalidOption",
                "lbConfig",
                format!(
                    "{at}.sourcePort: port 42 is reserved for the load balancer's health check"
                ),
            ));
        }
        if let Some(j) = rules[..i]
            .iter()
            .position(|o| o.source_port == r.source_port && o.protocol != r.protocol)
        {
            return Err(ApiError::field(
                "InvalidOption",
                "lbConfig",
                format!(
                    "lbConfig.portRules[{j}] ({}) and lbConfig.portRules[{i}] ({}) both listen on sourcePort {}: one port takes one protocol",
                    rules[j].protocol, r.protocol, r.source_port
                ),
            ));
        }
    }
    Ok(())
}

/// The target of `serviceId` as a rule names it: `name` in `stack_id`'s
/// stack, `stack/name` in another.
fn target_of(
    services: &[Resource],
    stacks: &[Resource],
    id: &str,
    stack_id: &str,
) -> Option<String> {
    let n = parse_id(Kind::Service, id)?;
    let s = services.iter().find(|s| s.id == n && !s.is_removed())?;
    let name = s.str("name")?;
    let sid = s.str("stackId").unwrap_or_default();
    if sid == stack_id {
        return Some(name.to_string());
    }
    let stack = stacks.iter().find(|st| st.api_id() == sid)?;
    Some(format!("{}/{name}", stack.str("name")?))
}

/// The service id a rule's `service` (`name` or `stack/name`) names, seen
/// from a service of `stack_id`.
pub fn service_id_of(
    services: &[Resource],
    stacks: &[Resource],
    target: &str,
    stack_id: &str,
) -> Option<String> {
    let (stack, name) = match target.split_once('/') {
        Some((st, n)) => (
            stacks
                .iter()
                .find(|s| !s.is_removed() && s.str("name") == Some(st))?
                .api_id(),
            n,
        ),
        None => (stack_id.to_string(), target),
    };
    services
        .iter()
        .find(|s| {
            !s.is_removed() && s.str("stackId") == Some(&stack) && s.str("name") == Some(name)
        })
        .map(Resource::api_id)
}

/// How a refusal names the fields of an `lbConfig`: as the API spells
/// them, or as rancher-compose does.
pub struct Spelling {
    /// The certificate list.
    pub certs: &'static str,
    /// The default certificate.
    pub default: &'static str,
    /// The port rules.
    pub rules: &'static str,
}

/// The API's names.
pub const API: Spelling = Spelling {
    certs: "lbConfig.certificateIds",
    default: "lbConfig.defaultCertificateId",
    rules: "lbConfig.portRules",
};

/// rancher-compose's names.
pub const COMPOSE: Spelling = Spelling {
    certs: "lb_config.certs",
    default: "lb_config.default_cert",
    rules: "lb_config.port_rules",
};

/// Refuse certificate names that are not among `certs` (the project's)
/// and `https`/`tls` rules with no certificate to terminate with.
pub fn check_certificates(
    lb: &LbConfig,
    certs: &[Resource],
    sp: &Spelling,
) -> Result<(), ApiError> {
    let known = |n: &str| certs.iter().any(|c| c.str("name") == Some(n));
    for (i, n) in lb.certificates.iter().enumerate() {
        if !known(n) {
            return Err(ApiError::field(
                "InvalidReference",
                "lbConfig",
                format!(
                    "{}[{i}]: no certificate named {n:?} in this environment",
                    sp.certs
                ),
            ));
        }
    }
    if let Some(n) = lb.default_certificate.as_deref().filter(|n| !known(n)) {
        return Err(ApiError::field(
            "InvalidReference",
            "lbConfig",
            format!(
                "{}: no certificate named {n:?} in this environment",
                sp.default
            ),
        ));
    }
    let none = lb.certificates.is_empty() && lb.default_certificate.is_none();
    if let Some(i) = lb
        .port_rules
        .iter()
        .position(|r| matches!(r.protocol.as_str(), "https" | "tls"))
        .filter(|_| none)
    {
        return Err(ApiError::field(
            "MissingRequired",
            "lbConfig",
            format!(
                "{}[{i}]: protocol {} terminates TLS and needs a certificate ({} or {})",
                sp.rules, lb.port_rules[i].protocol, sp.default, sp.certs
            ),
        ));
    }
    Ok(())
}

/// The certificate names of `certificateIds` and `defaultCertificateId`.
fn certificates_from(
    o: &Map<String, Value>,
    certs: &[Resource],
) -> Result<(Vec<String>, Option<String>), ApiError> {
    let refd = |at: String, id: &Value| -> Result<String, ApiError> {
        let s = id.as_str().ok_or_else(|| {
            ApiError::field(
                "InvalidFormat",
                "lbConfig",
                format!("{at} must be a certificate id"),
            )
        })?;
        super::certificates::name_of(certs, s).ok_or_else(|| {
            ApiError::field(
                "InvalidReference",
                "lbConfig",
                format!("{at}: no such certificate {s}"),
            )
        })
    };
    let ids = match o.get("certificateIds") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, id)| refd(format!("lbConfig.certificateIds[{i}]"), id))
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(ApiError::field(
                "InvalidFormat",
                "lbConfig",
                "lbConfig.certificateIds must be a list of certificate ids",
            ))
        }
    };
    let default = match o.get("defaultCertificateId") {
        None | Some(Value::Null) => None,
        Some(id) => Some(refd("lbConfig.defaultCertificateId".into(), id)?),
    };
    Ok((ids, default))
}

/// An `lbConfig` from a request body, for a service of `stack_id`, among
/// the project's services, stacks and certificates.
pub fn lb_config_from(
    v: &Value,
    services: &[Resource],
    stacks: &[Resource],
    certs: &[Resource],
    stack_id: &str,
) -> Result<LbConfig, ApiError> {
    let bad = |m: String| ApiError::field("InvalidFormat", "lbConfig", m);
    let Some(o) = v.as_object() else {
        return Err(bad("lbConfig must be an object".into()));
    };
    let mut rules = Vec::new();
    let list = match o.get("portRules") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(_) => return Err(bad("lbConfig.portRules must be a list".into())),
    };
    for (i, r) in list.iter().enumerate() {
        let at = format!("lbConfig.portRules[{i}]");
        let Some(m) = r.as_object() else {
            return Err(bad(format!("{at} must be an object")));
        };
        let mut m: Map<String, Value> = m.clone();
        m.remove("type");
        let sid = m.remove("serviceId");
        if let Some(id) = sid.as_ref().and_then(Value::as_str) {
            let t = target_of(services, stacks, id, stack_id).ok_or_else(|| {
                ApiError::field(
                    "InvalidReference",
                    "lbConfig",
                    format!("{at}.serviceId: no such service {id}"),
                )
            })?;
            m.insert("service".into(), json!(t));
        } else if let Some(t) = m.get("service").and_then(Value::as_str) {
            if service_id_of(services, stacks, t, stack_id).is_none() {
                return Err(ApiError::field(
                    "InvalidReference",
                    "lbConfig",
                    format!("{at}.service: target {t}: no such service"),
                ));
            }
        }
        if m.get("protocol").map_or(true, Value::is_null) {
            m.insert("protocol".into(), json!("http"));
        }
        if m.get("sourcePort").map_or(true, Value::is_null) {
            m.insert("sourcePort".into(), json!(0));
        }
        let rule: PortRule =
            serde_json::from_value(Value::Object(m)).map_err(|e| bad(format!("{at}: {e}")))?;
        rules.push(rule);
    }
    check_rules(&rules)?;
    let stickiness_policy = match o.get("stickinessPolicy") {
        None | Some(Value::Null) => None,
        Some(Value::Object(p)) => Some(
            p.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| {
                    let t = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                    (k.clone(), t)
                })
                .collect(),
        ),
        Some(_) => return Err(bad("lbConfig.stickinessPolicy must be an object".into())),
    };
    let (certificates, default_certificate) = certificates_from(o, certs)?;
    let lb = LbConfig {
        port_rules: rules,
        certificates,
        default_certificate,
        config: o.get("config").and_then(Value::as_str).map(str::to_string),
        stickiness_policy,
    };
    check_certificates(&lb, certs, &API)?;
    Ok(lb)
}

/// The `lbConfig` field of a service row of `stack_id`: Rancher's shape,
/// with each rule's `serviceId` when its target exists.
pub fn lb_config_json(
    lb: &LbConfig,
    services: &[Resource],
    stacks: &[Resource],
    certs: &[Resource],
    stack_id: &str,
) -> Value {
    let id = |n: &str| super::certificates::id_of(certs, n);
    let rules: Vec<Value> = lb
        .port_rules
        .iter()
        .map(|r| {
            let mut v = json!(r);
            v["type"] = json!("portRule");
            v["serviceId"] = r
                .service
                .as_deref()
                .and_then(|t| service_id_of(services, stacks, t, stack_id))
                .map_or(Value::Null, Value::String);
            v
        })
        .collect();
    json!({
        "type": "lbConfig",
        "portRules": rules,
        "certificateIds": lb.certificates.iter().filter_map(|n| id(n)).collect::<Vec<_>>(),
        "defaultCertificateId": lb.default_certificate.as_deref().and_then(id),
        "stickinessPolicy": lb.stickiness_policy,
        "config": lb.config,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(port: u16, proto: &str) -> PortRule {
        PortRule {
            source_port: port,
            protocol: proto.into(),
            ..PortRule::default()
        }
    }

    #[test]
    fn refusals_name_the_rule_and_the_field() {
        let rows: &[(&[PortRule], &str)] = &[
            (&[rule(53, "udp")], "lbConfig.portRules[0].protocol: protocol udp: HAProxy cannot balance UDP"),
            (&[rule(80, "http"), rule(42, "http")], "lbConfig.portRules[1].sourcePort: port 42 is reserved"),
            (
                &[rule(80, "http"), rule(81, "tcp"), rule(80, "tcp")],
                "lbConfig.portRules[0] (http) and lbConfig.portRules[2] (tcp) both listen on sourcePort 80",
            ),
            (&[rule(80, "gopher")], "lbConfig.portRules[0].protocol: protocol \"gopher\""),
        ];
        for (rules, want) in rows {
            let e = check_rules(rules).unwrap_err();
            assert_eq!(e.status, 422);
            assert!(e.message.starts_with(want), "{} vs {want}", e.message);
        }
        assert!(check_rules(&[rule(80, "http"), rule(80, "http"), rule(81, "tcp")]).is_ok());
    }
}
