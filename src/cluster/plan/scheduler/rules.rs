//! Affinity rules from `io.rancher.scheduler.affinity:*` labels (reference
//! §3.1): parsing, macro expansion and matching against one host.

use std::collections::BTreeMap;
use std::fmt;

use super::{HostView, InstanceView};

/// Prefix of every affinity label.
pub const AFFINITY_PREFIX: &str = "io.rancher.scheduler.affinity:";
/// Label: `'true'` runs one container on every eligible host.
pub const LABEL_GLOBAL: &str = "io.rancher.scheduler.global";
/// Host label: only containers carrying one of these `k=v` labels may land here.
pub const LABEL_REQUIRE_ANY: &str = "io.rancher.scheduler.require_any";
/// System label on every service container: `<stack>/<service>`.
pub const LABEL_STACK_SERVICE: &str = "io.rancher.stack_service.name";
/// System label on every stack container: `<stack>`.
pub const LABEL_STACK: &str = "io.rancher.stack.name";

/// What a rule looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// A label of the host.
    HostLabel,
    /// A label of a container already on the host.
    ContainerLabel,
    /// The name (or uuid) of a container already on the host.
    Container,
}

impl Field {
    fn as_str(self) -> &'static str {
        match self {
            Field::HostLabel => "host_label",
            Field::ContainerLabel => "container_label",
            Field::Container => "container",
        }
    }
}

/// One affinity rule: one entry of a comma-separated label value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// What it looks at.
    pub field: Field,
    /// "must not" (`_ne`) instead of "must".
    pub negate: bool,
    /// "should" (`_soft`): dropped when nothing fits.
    pub soft: bool,
    /// Label key, or container name (lower-cased, macros expanded).
    pub key: String,
    /// Label value; `None` means "has the key".
    pub value: Option<String>,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}{}{}={}",
            AFFINITY_PREFIX,
            self.field.as_str(),
            if self.soft { "_soft" } else { "" },
            if self.negate { "_ne" } else { "" },
            self.key
        )?;
        if let Some(v) = &self.value {
            write!(f, "={v}")?;
        }
        Ok(())
    }
}

/// Replace `${stack_name}`, `${service_name}` (and legacy `${project_name}`).
pub fn expand_macros(value: &str, stack: &str, service: &str) -> String {
    value
        .replace("${stack_name}", stack)
        .replace("${project_name}", stack)
        .replace("${service_name}", service)
}

/// The affinity rules in `labels`, in label-key then value order. Keys that
/// start with the prefix but name no known rule come back in the error list.
pub fn parse_rules(
    labels: &BTreeMap<String, String>,
    stack: &str,
    service: &str,
) -> (Vec<Rule>, Vec<String>) {
    let mut rules = Vec::new();
    let mut bad = Vec::new();
    for (key, value) in labels {
        let Some(spec) = key.strip_prefix(AFFINITY_PREFIX) else {
            continue;
        };
        let Some((field, soft, negate)) = parse_key(spec) else {
            bad.push(key.clone());
            continue;
        };
        for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let entry = expand_macros(entry, stack, service).to_lowercase();
            let (k, v) = match (field, entry.split_once('=')) {
                (Field::Container, _) => (entry.clone(), None),
                (_, Some((k, v))) => (k.trim().to_string(), Some(v.trim().to_string())),
                (_, None) => (entry.clone(), None),
            };
            let v = match (k.as_str(), v) {
                // `service` alone means a service of this stack.
                (LABEL_STACK_SERVICE, Some(v)) if !v.contains('/') => {
                    Some(format!("{}/{v}", stack.to_lowercase()))
                }
                (_, v) => v,
            };
            rules.push(Rule {
                field,
                negate,
                soft,
                key: k,
                value: v,
            });
        }
    }
    (rules, bad)
}

/// `host_label_soft_ne` → (HostLabel, soft, negate).
fn parse_key(spec: &str) -> Option<(Field, bool, bool)> {
    let (field, rest) = [Field::HostLabel, Field::ContainerLabel, Field::Container]
        .into_iter()
        .find_map(|f| spec.strip_prefix(f.as_str()).map(|r| (f, r)))?;
    let (soft, negate) = match rest {
        "" => (false, false),
        "_ne" => (false, true),
        "_soft" => (true, false),
        "_soft_ne" => (true, true),
        _ => return None,
    };
    Some((field, soft, negate))
}

/// `s.to_lowercase() == lower`, without allocating when `s` is ASCII
/// (then lower-casing is byte for byte).
fn lower_eq(s: &str, lower: &str) -> bool {
    if s.is_ascii() {
        s.len() == lower.len()
            && s.bytes()
                .zip(lower.bytes())
                .all(|(a, b)| a.to_ascii_lowercase() == b)
    } else {
        s.to_lowercase() == lower
    }
}

fn labels_match(labels: &BTreeMap<String, String>, key: &str, value: Option<&str>) -> bool {
    labels.iter().any(|(k, v)| {
        lower_eq(k, key)
            && match value {
                None => true,
                Some(want) => lower_eq(v, want),
            }
    })
}

/// Does `host` (running `on_host`) satisfy `rule`?
pub fn satisfied(rule: &Rule, host: &HostView, on_host: &[&InstanceView]) -> bool {
    let found = match rule.field {
        Field::HostLabel => labels_match(&host.labels, &rule.key, rule.value.as_deref()),
        Field::ContainerLabel => on_host
            .iter()
            .any(|i| labels_match(&i.labels, &rule.key, rule.value.as_deref())),
        Field::Container => on_host
            .iter()
            .any(|i| lower_eq(&i.name, &rule.key) || lower_eq(&i.uuid, &rule.key)),
    };
    found != rule.negate
}

/// The reason a host fails `rule`, in words.
pub fn explain(rule: &Rule) -> String {
    let what = match &rule.value {
        Some(v) => format!("{}={v}", rule.key),
        None => rule.key.clone(),
    };
    match (rule.field, rule.negate) {
        (Field::HostLabel, false) => format!("host needs label {what}"),
        (Field::HostLabel, true) => format!("host must not have label {what}"),
        (Field::ContainerLabel, false) => format!("host needs a container with label {what}"),
        (Field::ContainerLabel, true) => format!("host has a container with label {what}"),
        (Field::Container, false) => format!("host needs container {what}"),
        (Field::Container, true) => format!("host runs container {what}"),
    }
}

/// Does the host's `require_any` label (if any) admit a container with `labels`?
pub fn host_admits(host: &HostView, labels: &BTreeMap<String, String>) -> Result<(), String> {
    if admits(host, labels) {
        Ok(())
    } else {
        let req = host
            .labels
            .get(LABEL_REQUIRE_ANY)
            .map_or("", String::as_str);
        Err(format!("host requires a container label from {req}"))
    }
}

/// [`host_admits`] without the reason.
pub fn admits(host: &HostView, labels: &BTreeMap<String, String>) -> bool {
    let Some(req) = host.labels.get(LABEL_REQUIRE_ANY) else {
        return true;
    };
    req.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .any(|e| {
            let e = e.to_lowercase();
            match e.split_once('=') {
                Some((k, v)) => labels_match(labels, k, Some(v)),
                None => labels_match(labels, &e, None),
            }
        })
}
