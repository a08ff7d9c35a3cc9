//! The positioned YAML tree every config layer is read into.
//!
//! Each node remembers the file, line and column it came from, so a problem
//! found after several layers were merged still points at the line a user
//! wrote. Scalars keep their source text: a plain `1.10` stays `1.10` when a
//! string is wanted, and is only resolved to a number, bool or null when the
//! schema (or an untyped consumer) asks.

use std::fmt;
use std::sync::Arc;

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::TScalarStyle;

use super::problem::{PathSeg, Problem};

/// Largest document accepted, in bytes (cloud-configs are kilobytes).
pub const MAX_DOCUMENT_BYTES: usize = 4 * 1024 * 1024;
/// Deepest nesting of maps and lists accepted.
pub const MAX_DEPTH: usize = 64;
/// Most nodes a document may expand to (aliases included), against alias bombs.
pub const MAX_NODES: usize = 200_000;

/// Where a node was written: file (or `cmdline`, `default` …), line, column (1-based).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Span {
    /// Name of the source: a file path or a label such as `cmdline`.
    pub source: Arc<str>,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
}

impl Span {
    /// A span for values made by the program rather than read from a file.
    pub fn synthetic(source: &str) -> Span {
        Span {
            source: Arc::from(source),
            line: 0,
            col: 0,
        }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.source)
        } else {
            write!(f, "{}:{}:{}", self.source, self.line, self.col)
        }
    }
}

/// A scalar as written: its text and whether it was quoted or a block.
#[derive(Clone, Debug, PartialEq)]
pub struct Scalar {
    /// The scalar's text after YAML unescaping.
    pub text: String,
    /// True for plain (unquoted) scalars, which resolve to null/bool/number.
    pub plain: bool,
}

/// A resolved scalar, following the YAML 1.2 core schema.
#[derive(Clone, Debug, PartialEq)]
pub enum Resolved<'a> {
    /// `~`, `null`, or empty.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A signed integer (decimal, `0x`, `0o`).
    Int(i64),
    /// A float, `.inf` and `.nan` included.
    Float(f64),
    /// Anything else, or any quoted scalar.
    Str(&'a str),
}

impl Scalar {
    /// Resolve a plain scalar to its core-schema type; quoted ones are strings.
    pub fn resolve(&self) -> Resolved<'_> {
        if !self.plain {
            return Resolved::Str(&self.text);
        }
        let t = self.text.as_str();
        match t {
            "" | "~" | "null" | "Null" | "NULL" => return Resolved::Null,
            "true" | "True" | "TRUE" => return Resolved::Bool(true),
            "false" | "False" | "FALSE" => return Resolved::Bool(false),
            ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
                return Resolved::Float(f64::INFINITY)
            }
            "-.inf" | "-.Inf" | "-.INF" => return Resolved::Float(f64::NEG_INFINITY),
            ".nan" | ".NaN" | ".NAN" => return Resolved::Float(f64::NAN),
            _ => {}
        }
        if let Some(i) = parse_int(t) {
            return Resolved::Int(i);
        }
        if looks_like_float(t) {
            if let Ok(f) = t.parse::<f64>() {
                return Resolved::Float(f);
            }
        }
        Resolved::Str(t)
    }

    /// A bool, accepting YAML 1.1 spellings (`yes`, `on` …) that RancherOS configs use.
    pub fn as_bool(&self) -> Option<bool> {
        match self.text.to_ascii_lowercase().as_str() {
            "true" | "yes" | "y" | "on" => Some(true),
            "false" | "no" | "n" | "off" => Some(false),
            _ => None,
        }
    }
}

fn parse_int(t: &str) -> Option<i64> {
    let (neg, body) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    let v = if let Some(h) = body.strip_prefix("0x") {
        i64::from_str_radix(h, 16).ok()?
    } else if let Some(o) = body.strip_prefix("0o") {
        i64::from_str_radix(o, 8).ok()?
    } else if !body.is_empty() && body.bytes().all(|b| b.is_ascii_digit()) {
        body.parse::<i64>().ok()?
    } else {
        return None;
    };
    Some(if neg { -v } else { v })
}

fn looks_like_float(t: &str) -> bool {
    let body = t.trim_start_matches(['-', '+']);
    !body.is_empty()
        && body.bytes().any(|b| b.is_ascii_digit())
        && body
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'))
        && body.as_bytes()[0] != b'e'
        && body.as_bytes()[0] != b'E'
}

/// One `key: value` pair of a map, with the key's own position.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// The key (non-string keys are kept as their text).
    pub key: String,
    /// Where the key was written.
    pub key_span: Span,
    /// The value.
    pub value: Node,
}

/// A node's content.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A scalar, resolved on demand.
    Scalar(Scalar),
    /// A list.
    Seq(Vec<Node>),
    /// A map, in document order, keys unique.
    Map(Vec<Entry>),
}

/// A YAML node with its position.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// The content.
    pub value: Value,
    /// Where it was written.
    pub span: Span,
}

impl Node {
    /// A null node.
    pub fn null(span: Span) -> Node {
        Node::plain("", span)
    }

    /// A plain scalar node.
    pub fn plain(text: &str, span: Span) -> Node {
        Node {
            value: Value::Scalar(Scalar {
                text: text.to_string(),
                plain: true,
            }),
            span,
        }
    }

    /// A quoted (always string) scalar node.
    pub fn string(text: &str, span: Span) -> Node {
        Node {
            value: Value::Scalar(Scalar {
                text: text.to_string(),
                plain: false,
            }),
            span,
        }
    }

    /// An empty map.
    pub fn empty_map(span: Span) -> Node {
        Node {
            value: Value::Map(Vec::new()),
            span,
        }
    }

    /// True for a null scalar.
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar(s) if s.resolve() == Resolved::Null)
    }

    /// The entries when this is a map.
    pub fn as_map(&self) -> Option<&Vec<Entry>> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// Mutable entries when this is a map.
    pub fn as_map_mut(&mut self) -> Option<&mut Vec<Entry>> {
        match &mut self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The value under `key` when this is a map.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|e| e.key == key)
            .map(|e| &e.value)
    }

    /// The scalar text when this is a scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar(s) => Some(&s.text),
            _ => None,
        }
    }

    /// A short name of the node's kind for messages.
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Scalar(s) => match s.resolve() {
                Resolved::Null => "null",
                Resolved::Bool(_) => "a boolean",
                Resolved::Int(_) => "an integer",
                Resolved::Float(_) => "a number",
                Resolved::Str(_) => "a string",
            },
            Value::Seq(_) => "a list",
            Value::Map(_) => "a map",
        }
    }

    /// Count of nodes in this subtree.
    pub fn count(&self) -> usize {
        match &self.value {
            Value::Scalar(_) => 1,
            Value::Seq(v) => 1 + v.iter().map(Node::count).sum::<usize>(),
            Value::Map(m) => 1 + m.iter().map(|e| e.value.count()).sum::<usize>(),
        }
    }

    /// The child named by one path segment.
    pub fn child_mut(&mut self, seg: &PathSeg) -> Option<&mut Node> {
        match (seg, &mut self.value) {
            (PathSeg::Key(k), Value::Map(m)) => {
                m.iter_mut().find(|e| &e.key == k).map(|e| &mut e.value)
            }
            (PathSeg::Index(i), Value::Seq(v)) => v.get_mut(*i),
            _ => None,
        }
    }

    /// Remove the node at `path`; false when it is not there (or is the root).
    pub fn remove_path(&mut self, path: &[PathSeg]) -> bool {
        match path {
            [] => false,
            [last] => match (last, &mut self.value) {
                (PathSeg::Key(k), Value::Map(m)) => {
                    let before = m.len();
                    m.retain(|e| &e.key != k);
                    before != m.len()
                }
                (PathSeg::Index(i), Value::Seq(v)) if *i < v.len() => {
                    v.remove(*i);
                    true
                }
                _ => false,
            },
            [first, rest @ ..] => match self.child_mut(first) {
                Some(child) => child.remove_path(rest),
                None => false,
            },
        }
    }
}

/// Parse one YAML document into a positioned tree.
///
/// An empty document (or one holding only comments) is null. More than
/// one document, tabs used for indentation, invalid UTF-8, documents over
/// [`MAX_DOCUMENT_BYTES`] or deeper than [`MAX_DEPTH`] are errors with a position.
pub fn parse(source: &str, bytes: &[u8]) -> Result<Node, Problem> {
    let src: Arc<str> = Arc::from(source);
    let at = |line: usize, col: usize| Span {
        source: src.clone(),
        line,
        col,
    };
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(Problem::new(
            at(1, 1),
            Vec::new(),
            format!(
                "document is {} bytes, more than the {} allowed",
                bytes.len(),
                MAX_DOCUMENT_BYTES
            ),
        ));
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let good = &bytes[..e.valid_up_to()];
            let line = 1 + good.iter().filter(|b| **b == b'\n').count();
            let col = 1 + good.iter().rev().take_while(|b| **b != b'\n').count();
            return Err(Problem::new(
                at(line, col),
                Vec::new(),
                "invalid UTF-8 (cloud-config must be UTF-8 text)".to_string(),
            ));
        }
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // The parser is third-party code; a panic inside it must become an error,
    // never take down PID 1 or the CLI.
    let result = std::panic::catch_unwind(|| build(text, &src));
    match result {
        Ok(r) => r,
        Err(_) => Err(Problem::new(
            at(1, 1),
            Vec::new(),
            "the YAML parser failed on this document".to_string(),
        )),
    }
}

struct Frame {
    node: Node,
    anchor: usize,
    pending_key: Option<(String, Span)>,
}

fn build(text: &str, src: &Arc<str>) -> Result<Node, Problem> {
    let span = |m: yaml_rust2::scanner::Marker| Span {
        source: src.clone(),
        line: m.line(),
        col: m.col() + 1,
    };
    let mut parser = Parser::new_from_str(text);
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: Vec<(usize, Node)> = Vec::new();
    let mut root: Option<Node> = None;
    let mut docs = 0usize;
    let mut nodes = 0usize;
    loop {
        let (ev, mark) = parser.next_token().map_err(|e| {
            Problem::new(span(*e.marker()), Vec::new(), clean_scan_message(e.info()))
        })?;
        let sp = span(mark);
        let finished: Option<(Node, usize)> = match ev {
            Event::StreamEnd => break,
            Event::StreamStart | Event::Nothing | Event::DocumentEnd => None,
            Event::DocumentStart => {
                docs += 1;
                if docs > 1 {
                    return Err(Problem::new(
                        sp,
                        Vec::new(),
                        "more than one YAML document (`---`) in one cloud-config".to_string(),
                    ));
                }
                None
            }
            Event::Alias(id) => {
                let found = anchors.iter().rev().find(|(a, _)| *a == id).map(|(_, n)| n);
                match found {
                    Some(n) => {
                        nodes += n.count();
                        let mut n = n.clone();
                        n.span = sp.clone();
                        Some((n, 0))
                    }
                    None => return Err(Problem::new(sp, Vec::new(), "unknown alias".to_string())),
                }
            }
            Event::Scalar(text, style, anchor, _tag) => Some((
                Node {
                    value: Value::Scalar(Scalar {
                        text,
                        plain: style == TScalarStyle::Plain,
                    }),
                    span: sp,
                },
                anchor,
            )),
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(Problem::new(
                        sp,
                        Vec::new(),
                        format!("nesting deeper than {MAX_DEPTH} levels"),
                    ));
                }
                let value = if matches!(ev, Event::SequenceStart(..)) {
                    Value::Seq(Vec::new())
                } else {
                    Value::Map(Vec::new())
                };
                stack.push(Frame {
                    node: Node { value, span: sp },
                    anchor,
                    pending_key: None,
                });
                None
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                Some(f) => Some((f.node, f.anchor)),
                None => None,
            },
        };
        let Some((node, anchor)) = finished else {
            continue;
        };
        nodes += 1;
        if nodes > MAX_NODES {
            return Err(Problem::new(
                node.span.clone(),
                Vec::new(),
                format!("document expands to more than {MAX_NODES} nodes (alias bomb?)"),
            ));
        }
        if anchor > 0 {
            anchors.push((anchor, node.clone()));
        }
        match stack.last_mut() {
            None => root = Some(node),
            Some(frame) => add_child(frame, node)?,
        }
    }
    let top = Span {
        source: src.clone(),
        line: 1,
        col: 1,
    };
    Ok(root.unwrap_or_else(|| Node::null(top)))
}

/// Parse a whole config document: like [`parse`], but an empty document is an
/// empty map and anything other than a map at the top is an error.
pub fn parse_document(source: &str, bytes: &[u8]) -> Result<Node, Problem> {
    let node = parse(source, bytes)?;
    if node.is_null() {
        return Ok(Node::empty_map(node.span));
    }
    match node.value {
        Value::Map(_) => Ok(node),
        _ => Err(Problem::new(
            node.span.clone(),
            Vec::new(),
            format!(
                "a cloud-config must be a map of keys, found {}",
                node.kind()
            ),
        )),
    }
}

/// Parse a value given on a command line (`ros config set`, kernel
/// command line): YAML when it parses, else the literal text as a string.
pub fn parse_value(source: &str, text: &str) -> Node {
    let span = Span {
        source: Arc::from(source),
        line: 1,
        col: 1,
    };
    if text.trim().is_empty() {
        return Node::string(text, span);
    }
    match parse(source, text.as_bytes()) {
        Ok(n) => n,
        Err(_) => Node::string(text, span),
    }
}

fn add_child(frame: &mut Frame, node: Node) -> Result<(), Problem> {
    match &mut frame.node.value {
        Value::Seq(v) => {
            v.push(node);
            Ok(())
        }
        Value::Map(m) => match frame.pending_key.take() {
            None => {
                let key = match &node.value {
                    Value::Scalar(s) => s.text.clone(),
                    _ => {
                        return Err(Problem::new(
                            node.span,
                            Vec::new(),
                            "a map key must be a scalar, not a list or map".to_string(),
                        ))
                    }
                };
                if let Some(prev) = m.iter().find(|e| e.key == key) {
                    return Err(Problem::new(
                        node.span,
                        vec![PathSeg::Key(key.clone())],
                        format!(
                            "duplicate key (first defined at line {})",
                            prev.key_span.line
                        ),
                    ));
                }
                frame.pending_key = Some((key, node.span));
                Ok(())
            }
            Some((key, key_span)) => {
                m.push(Entry {
                    key,
                    key_span,
                    value: node,
                });
                Ok(())
            }
        },
        Value::Scalar(_) => Ok(()),
    }
}

fn clean_scan_message(info: &str) -> String {
    let msg = info.trim();
    if msg.contains("tab") {
        format!("{msg} (YAML indentation must use spaces, not tabs)")
    } else {
        msg.to_string()
    }
}

/// Render a tree back to YAML text (keys in their order, scalars typed).
pub fn to_yaml(node: &Node) -> String {
    let doc = to_yaml_value(node);
    let mut out = String::new();
    let mut emitter = yaml_rust2::YamlEmitter::new(&mut out);
    emitter.multiline_strings(true);
    if emitter.dump(&doc).is_err() {
        return String::new();
    }
    // The emitter writes a leading `---`; cloud-config files do not want it.
    let body = out.strip_prefix("---\n").unwrap_or(&out);
    let body = body.strip_prefix("--- ").unwrap_or(body);
    let mut s = body.to_string();
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s
}

fn to_yaml_value(node: &Node) -> yaml_rust2::Yaml {
    use yaml_rust2::Yaml;
    match &node.value {
        Value::Scalar(s) => match s.resolve() {
            Resolved::Null => Yaml::Null,
            Resolved::Bool(b) => Yaml::Boolean(b),
            Resolved::Int(i) => Yaml::Integer(i),
            Resolved::Float(_) => Yaml::Real(s.text.clone()),
            Resolved::Str(t) => Yaml::String(t.to_string()),
        },
        Value::Seq(v) => Yaml::Array(v.iter().map(to_yaml_value).collect()),
        Value::Map(m) => {
            let mut h = yaml_rust2::yaml::Hash::new();
            for e in m {
                h.insert(Yaml::String(e.key.clone()), to_yaml_value(&e.value));
            }
            Yaml::Hash(h)
        }
    }
}

/// Render a tree as a JSON value (for `--output json` and the API).
pub fn to_json(node: &Node) -> serde_json::Value {
    use serde_json::Value as J;
    match &node.value {
        Value::Scalar(s) => match s.resolve() {
            Resolved::Null => J::Null,
            Resolved::Bool(b) => J::Bool(b),
            Resolved::Int(i) => J::from(i),
            Resolved::Float(f) => serde_json::Number::from_f64(f)
                .map(J::Number)
                .unwrap_or_else(|| J::String(s.text.clone())),
            Resolved::Str(t) => J::String(t.to_string()),
        },
        Value::Seq(v) => J::Array(v.iter().map(to_json).collect()),
        Value::Map(m) => J::Object(
            m.iter()
                .map(|e| (e.key.clone(), to_json(&e.value)))
                .collect(),
        ),
    }
}
