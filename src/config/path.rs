//! Dotted key paths (`ros.network.dns.nameservers`) over a tree: get and set.
//!
//! Some maps have keys that contain dots themselves (`ros.sysctl` keys such as
//! `net.ipv4.ip_forward`, environment and label names). Under those the rest
//! of the path is one key. Elsewhere an existing key that contains dots is
//! matched greedily, so `get` finds whatever `set` wrote.

use super::merge::{RANCHER_KEY, ROS_KEY};
use super::node::{Entry, Node, Span, Value};
use super::problem::PathSeg;

/// Maps whose keys are free-form (may contain dots).
fn is_free_form(parent: &[String]) -> bool {
    let joined = parent.join(".");
    matches!(joined.as_str(), "ros.sysctl" | "ros.environment")
        || matches!(
            parent.last().map(String::as_str),
            Some("labels" | "environment" | "log_opt" | "log_opts" | "bond_opts")
        )
}

/// Split a dotted key, mapping a leading `rancher.` to `ros.`.
pub fn split_key(key: &str) -> Result<Vec<String>, String> {
    let key = key.trim();
    if key.is_empty() {
        return Err("empty key".to_string());
    }
    let mut segs: Vec<String> = key.split('.').map(String::from).collect();
    if segs.iter().any(String::is_empty) {
        return Err(format!("bad key {key:?}: empty segment"));
    }
    if segs[0] == RANCHER_KEY {
        segs[0] = ROS_KEY.to_string();
    }
    Ok(segs)
}

/// Resolve `segs` against `tree` to the concrete path of an existing node.
fn resolve(tree: &Node, segs: &[String]) -> Option<Vec<PathSeg>> {
    let mut out = Vec::new();
    let mut names: Vec<String> = Vec::new();
    let mut cur = tree;
    let mut i = 0;
    while i < segs.len() {
        match &cur.value {
            Value::Map(m) => {
                let (len, entry) = if is_free_form(&names) {
                    let k = segs[i..].join(".");
                    (segs.len() - i, m.iter().find(|e| e.key == k)?)
                } else {
                    (1..=segs.len() - i).rev().find_map(|n| {
                        let k = segs[i..i + n].join(".");
                        m.iter().find(|e| e.key == k).map(|e| (n, e))
                    })?
                };
                out.push(PathSeg::Key(entry.key.clone()));
                names.push(entry.key.clone());
                cur = &entry.value;
                i += len;
            }
            Value::Seq(v) => {
                let idx: usize = segs[i].parse().ok()?;
                cur = v.get(idx)?;
                out.push(PathSeg::Index(idx));
                names.push(segs[i].clone());
                i += 1;
            }
            Value::Scalar(_) => return None,
        }
    }
    Some(out)
}

/// The node at a dotted key, if set.
pub fn get<'a>(tree: &'a Node, key: &str) -> Result<Option<&'a Node>, String> {
    let segs = split_key(key)?;
    let Some(path) = resolve(tree, &segs) else {
        return Ok(None);
    };
    let mut cur = tree;
    for seg in &path {
        cur = match (seg, &cur.value) {
            (PathSeg::Key(k), Value::Map(m)) => match m.iter().find(|e| &e.key == k) {
                Some(e) => &e.value,
                None => return Ok(None),
            },
            (PathSeg::Index(i), Value::Seq(v)) => match v.get(*i) {
                Some(n) => n,
                None => return Ok(None),
            },
            _ => return Ok(None),
        };
    }
    Ok(Some(cur))
}

/// Set the node at a dotted key, creating maps on the way. A scalar or list
/// in the way is replaced by a map (as RancherOS did); a list index may
/// replace an element or append one past the end.
pub fn set(tree: &mut Node, key: &str, value: Node) -> Result<(), String> {
    let segs = split_key(key)?;
    set_in(tree, &segs, &mut Vec::new(), value, key)
}

fn set_in(
    cur: &mut Node,
    segs: &[String],
    names: &mut Vec<String>,
    value: Node,
    key: &str,
) -> Result<(), String> {
    let Some(first) = segs.first() else {
        *cur = value;
        return Ok(());
    };
    if let Value::Seq(v) = &mut cur.value {
        if let Ok(idx) = first.parse::<usize>() {
            if idx < v.len() {
                names.push(first.clone());
                return set_in(&mut v[idx], &segs[1..], names, value, key);
            }
            if idx == v.len() {
                let span = value.span.clone();
                v.push(Node::empty_map(span));
                names.push(first.clone());
                return set_in(&mut v[idx], &segs[1..], names, value, key);
            }
            return Err(format!(
                "{key}: index {idx} is past the end of a list of {}",
                v.len()
            ));
        }
    }
    if !matches!(cur.value, Value::Map(_)) {
        cur.value = Value::Map(Vec::new());
    }
    let free = is_free_form(names);
    let Value::Map(m) = &mut cur.value else {
        return Ok(());
    };
    let (len, idx) = if free {
        let k = segs.join(".");
        (segs.len(), m.iter().position(|e| e.key == k))
    } else {
        (1..=segs.len())
            .rev()
            .find_map(|n| {
                let k = segs[..n].join(".");
                m.iter().position(|e| e.key == k).map(|i| (n, Some(i)))
            })
            .unwrap_or((1, None))
    };
    let k = segs[..len].join(".");
    let idx = match idx {
        Some(i) => i,
        None => {
            m.push(Entry {
                key: k.clone(),
                key_span: Span::synthetic("set"),
                value: Node::empty_map(Span::synthetic("set")),
            });
            m.len() - 1
        }
    };
    names.push(k);
    set_in(&mut m[idx].value, &segs[len..], names, value, key)
}

/// Build a tree holding just `value` at `key` (for the kernel command line).
pub fn singleton(key: &str, value: Node) -> Result<Node, String> {
    let mut tree = Node::empty_map(value.span.clone());
    set(&mut tree, key, value)?;
    Ok(tree)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::node::{parse_document, parse_value, to_yaml};

    fn doc(s: &str) -> Node {
        parse_document("t", s.as_bytes()).unwrap()
    }

    #[test]
    fn get_table() {
        let t = doc("ros:\n  network:\n    dns:\n      nameservers: [1.1.1.1, 8.8.8.8]\n  sysctl:\n    net.ipv4.ip_forward: 1\nhostname: h\n");
        let rows: &[(&str, Option<&str>)] = &[
            ("hostname", Some("h\n")),
            ("ros.network.dns.nameservers.1", Some("8.8.8.8\n")),
            ("rancher.network.dns.nameservers.0", Some("1.1.1.1\n")),
            ("ros.sysctl.net.ipv4.ip_forward", Some("1\n")),
            (
                "ros.network.dns",
                Some("nameservers:\n  - 1.1.1.1\n  - 8.8.8.8\n"),
            ),
            ("ros.missing", None),
            ("hostname.x", None),
            ("ros.network.dns.nameservers.9", None),
        ];
        for (key, want) in rows {
            let got = get(&t, key).unwrap().map(to_yaml);
            assert_eq!(got.as_deref(), *want, "{key}");
        }
    }

    #[test]
    fn set_table() {
        let rows = [
            ("", "hostname", "x", "hostname: x\n"),
            ("hostname: a", "hostname", "b", "hostname: b\n"),
            ("", "ros.debug", "true", "ros:\n  debug: true\n"),
            ("", "rancher.debug", "true", "ros:\n  debug: true\n"),
            ("", "ros.sysctl.net.ipv4.ip_forward", "1", "ros:\n  sysctl:\n    net.ipv4.ip_forward: 1\n"),
            ("ros: {dns: [a, b]}", "ros.dns.1", "c", "ros:\n  dns:\n    - a\n    - c\n"),
            ("ros: {dns: [a]}", "ros.dns.1", "c", "ros:\n  dns:\n    - a\n    - c\n"),
            ("ros: 5", "ros.debug", "true", "ros:\n  debug: true\n"),
            ("", "ros.network.dns.nameservers", "[1.1.1.1, 8.8.8.8]", "ros:\n  network:\n    dns:\n      nameservers:\n        - 1.1.1.1\n        - 8.8.8.8\n"),
        ];
        for (start, key, value, want) in rows {
            let mut t = doc(start);
            set(&mut t, key, parse_value("v", value)).unwrap();
            assert_eq!(to_yaml(&t), want, "{start:?} set {key}={value}");
        }
    }

    #[test]
    fn bad_keys() {
        assert!(split_key("").is_err());
        assert!(split_key("a..b").is_err());
        let mut t = doc("a: [1]");
        assert!(set(&mut t, "a.5", parse_value("v", "x"))
            .unwrap_err()
            .contains("past the end"));
    }
}
