//! The kernel command line as a config layer.
//!
//! `ros.KEY=VALUE` and `rancher.KEY=VALUE` become `ros: {KEY: VALUE}` with the
//! value parsed as YAML (`[a,b]` is a list, `"123"` stays a string); a bare
//! `ros.debug` means `true`. Other words (`console=ttyS0`, `quiet`) are the
//! kernel's and are kept apart in [`Cmdline::other`] for datasources.

use std::sync::Arc;

use super::merge::merge;
use super::node::{parse_value, Node, Span};
use super::path::singleton;
use super::problem::Problem;

/// A parsed kernel command line.
#[derive(Clone, Debug, PartialEq)]
pub struct Cmdline {
    /// The `ros.*` / `rancher.*` keys as a config layer.
    pub layer: Node,
    /// Every other `key=value` (or bare word, with an empty value), in order.
    pub other: Vec<(String, String)>,
    /// Keys that could not be used, with why.
    pub problems: Vec<Problem>,
}

impl Cmdline {
    /// The value of a non-config word such as `cloud-config-url`.
    pub fn value(&self, key: &str) -> Option<&str> {
        self.other
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Split a command line into words: whitespace separates, double quotes group
/// (and are kept, so a quoted value stays a string when parsed as YAML).
/// Returns each word with its byte offset.
pub fn words(line: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut start = None;
    let mut quoted = false;
    let mut bracket = 0i32;
    for (i, c) in line.char_indices() {
        match c {
            '"' => {
                quoted = !quoted;
                start.get_or_insert(i);
            }
            '[' if !quoted => {
                bracket += 1;
                start.get_or_insert(i);
            }
            ']' if !quoted => {
                bracket -= 1;
                start.get_or_insert(i);
            }
            c if c.is_whitespace() && !quoted && bracket <= 0 => {
                if let Some(s) = start.take() {
                    out.push((s, line[s..i].to_string()));
                }
                bracket = 0;
            }
            _ => {
                start.get_or_insert(i);
            }
        }
    }
    if let Some(s) = start {
        out.push((s, line[s..].to_string()));
    }
    out
}

/// Parse a kernel command line (the text of /proc/cmdline).
pub fn parse(source: &str, line: &str) -> Cmdline {
    let src: Arc<str> = Arc::from(source);
    let mut layer = Node::empty_map(Span {
        source: src.clone(),
        line: 1,
        col: 1,
    });
    let mut other = Vec::new();
    let mut problems = Vec::new();
    // Everything after a lone `--` belongs to init as argv, not to us.
    for (offset, word) in words(line).into_iter().take_while(|(_, w)| w != "--") {
        let (key, value) = match word.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (word.clone(), None),
        };
        let is_ours = key.starts_with("ros.") || key.starts_with("rancher.");
        if !is_ours {
            other.push((key, value.unwrap_or_default()));
            continue;
        }
        let span = Span {
            source: src.clone(),
            line: 1,
            col: offset + 1,
        };
        let mut node = match &value {
            Some(v) => parse_value(source, v),
            None => Node::plain("true", span.clone()),
        };
        relocate(&mut node, &span);
        match singleton(&key, node) {
            Ok(mut tree) => {
                relocate(&mut tree, &span);
                layer = merge(layer, tree);
            }
            Err(msg) => problems.push(Problem::new(span, Vec::new(), msg)),
        }
    }
    Cmdline {
        layer,
        other,
        problems,
    }
}

/// Point every node of a command-line value at the word it came from.
fn relocate(node: &mut Node, span: &Span) {
    node.span = span.clone();
    match &mut node.value {
        super::node::Value::Seq(v) => v.iter_mut().for_each(|n| relocate(n, span)),
        super::node::Value::Map(m) => m.iter_mut().for_each(|e| {
            e.key_span = span.clone();
            relocate(&mut e.value, span);
        }),
        super::node::Value::Scalar(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::node::to_yaml;

    #[test]
    fn words_table() {
        let rows: &[(&str, &[&str])] = &[
            ("a b  c", &["a", "b", "c"]),
            (r#"x="a b" y"#, &[r#"x="a b""#, "y"]),
            (
                "ros.dns=[1.1.1.1, 8.8.8.8] z",
                &["ros.dns=[1.1.1.1, 8.8.8.8]", "z"],
            ),
            ("", &[]),
            ("  ", &[]),
        ];
        for (line, want) in rows {
            let got: Vec<String> = words(line).into_iter().map(|(_, w)| w).collect();
            assert_eq!(got, *want, "{line:?}");
        }
    }

    #[test]
    fn cmdline_table() {
        let rows = [
            ("console=ttyS0 quiet", "{}\n"),
            ("ros.debug", "ros:\n  debug: true\n"),
            ("rancher.debug=false", "ros:\n  debug: false\n"),
            ("ros.network.dns.nameservers=[1.1.1.1,8.8.8.8]", "ros:\n  network:\n    dns:\n      nameservers:\n        - 1.1.1.1\n        - 8.8.8.8\n"),
            (r#"ros.hostname="123""#, "ros:\n  hostname: \"123\"\n"),
            ("ros.hostname=123", "ros:\n  hostname: 123\n"),
            ("ros.a=1 ros.a=2", "ros:\n  a: 2\n"),
            ("ros.a=1 -- ros.b=2", "ros:\n  a: 1\n"),
            ("ros.state.autoformat=[/dev/sda,/dev/vda] ros.state.dev=LABEL=ROS_STATE", "ros:\n  state:\n    autoformat:\n      - /dev/sda\n      - /dev/vda\n    dev: LABEL=ROS_STATE\n"),
        ];
        for (line, want) in rows {
            let c = parse("cmdline", line);
            assert_eq!(to_yaml(&c.layer), want, "{line}");
            assert!(c.problems.is_empty(), "{line}: {:?}", c.problems);
        }
    }

    #[test]
    fn other_words_and_positions() {
        let c = parse(
            "/proc/cmdline",
            "quiet cloud-config-url=http://x/y ros.debug=true",
        );
        assert_eq!(c.value("cloud-config-url"), Some("http://x/y"));
        assert_eq!(c.value("quiet"), Some(""));
        let debug = c.layer.get("ros").unwrap().get("debug").unwrap();
        assert_eq!(debug.span.col, 35);
        let bad = parse("cmdline", "ros..x=1");
        assert_eq!(bad.problems.len(), 1);
    }
}
