//! Typed structs from a positioned tree, with every problem reported.
//!
//! A serde `Deserializer` over [`Node`]: type errors carry the position and
//! key path of the node that failed, and keys that the target struct does not
//! declare are collected as "unknown key" problems instead of being ignored.
//! [`from_node`] keeps going after an error: it removes the offending node
//! and tries again, so one run reports every problem and still yields the
//! config built from everything that was valid.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};

use super::node::{Node, Resolved, Span, Value};
use super::problem::{PathSeg, Problem};

/// An error while deserializing one node.
#[derive(Debug)]
pub struct DeError {
    message: String,
    located: Option<(Span, Vec<PathSeg>)>,
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            message: tidy(&msg.to_string()),
            located: None,
        }
    }
}

/// serde's messages read "invalid type: string \"x\", expected a boolean";
/// users want the expectation first.
fn tidy(msg: &str) -> String {
    if let Some(rest) = msg.strip_prefix("invalid type: ") {
        if let Some((found, expected)) = rest.split_once(", expected ") {
            return format!("expected {expected}, found {found}");
        }
    }
    if let Some(rest) = msg.strip_prefix("invalid value: ") {
        if let Some((found, expected)) = rest.split_once(", expected ") {
            return format!("expected {expected}, found {found}");
        }
    }
    msg.to_string()
}

/// Deserialize `T` from `tree`, collecting every problem.
///
/// Returns the value built from all valid parts (None only when the root
/// itself is unusable) and the problems, in document order.
pub fn from_node<T: DeserializeOwned>(tree: &Node) -> (Option<T>, Vec<Problem>) {
    let mut tree = tree.clone();
    let mut problems = Vec::new();
    let budget = tree.count() + 1;
    for _ in 0..budget {
        let unknown = RefCell::new(Vec::new());
        let de = NodeDe {
            node: &tree,
            path: Vec::new(),
            unknown: &unknown,
        };
        match T::deserialize(de) {
            Ok(v) => {
                problems.extend(unknown.into_inner());
                sort(&mut problems);
                return (Some(v), problems);
            }
            Err(e) => {
                let (span, path) = e.located.unwrap_or_else(|| (tree.span.clone(), Vec::new()));
                let removed = tree.remove_path(&path);
                problems.push(Problem::new(span, path, e.message));
                if !removed {
                    sort(&mut problems);
                    return (None, problems);
                }
            }
        }
    }
    sort(&mut problems);
    (None, problems)
}

fn sort(problems: &mut [Problem]) {
    problems.sort_by(|a, b| {
        (a.span.line, a.span.col, a.key()).cmp(&(b.span.line, b.span.col, b.key()))
    });
}

/// The deserializer for one node.
struct NodeDe<'a> {
    node: &'a Node,
    path: Vec<PathSeg>,
    unknown: &'a RefCell<Vec<Problem>>,
}

impl<'a> NodeDe<'a> {
    fn child(&self, node: &'a Node, seg: PathSeg) -> NodeDe<'a> {
        let mut path = self.path.clone();
        path.push(seg);
        NodeDe {
            node,
            path,
            unknown: self.unknown,
        }
    }

    fn locate(&self, mut e: DeError) -> DeError {
        if e.located.is_none() {
            e.located = Some((self.node.span.clone(), self.path.clone()));
        }
        e
    }

    fn scalar(&self) -> Option<&'a super::node::Scalar> {
        match &self.node.value {
            Value::Scalar(s) => Some(s),
            _ => None,
        }
    }

    fn expected(&self, what: &str) -> DeError {
        let found = match &self.node.value {
            Value::Scalar(s) if !self.node.is_null() => {
                let text: String = s.text.chars().take(40).collect();
                format!("{} {text:?}", self.node.kind())
            }
            _ => self.node.kind().to_string(),
        };
        self.locate(DeError {
            message: format!("expected {what}, found {found}"),
            located: None,
        })
    }

    fn any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Scalar(s) => match s.resolve() {
                Resolved::Null => visitor.visit_unit(),
                Resolved::Bool(b) => visitor.visit_bool(b),
                Resolved::Int(i) => visitor.visit_i64(i),
                Resolved::Float(f) => visitor.visit_f64(f),
                Resolved::Str(t) => visitor.visit_borrowed_str(t),
            },
            Value::Seq(items) => visitor.visit_seq(SeqAccess {
                de: &self,
                items,
                index: 0,
            }),
            Value::Map(entries) => visitor.visit_map(MapAccess {
                de: &self,
                entries,
                index: 0,
            }),
        }
    }

    fn int<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.scalar().map(|s| s.resolve()) {
            Some(Resolved::Int(i)) => visitor.visit_i64(i),
            // Quoted numbers ("8080") are common in hand-written configs.
            Some(Resolved::Str(t)) => match t.trim().parse::<i64>() {
                Ok(i) => visitor.visit_i64(i),
                Err(_) => Err(self.expected("an integer")),
            },
            _ => Err(self.expected("an integer")),
        }
    }
}

macro_rules! forward_int {
    ($($m:ident)*) => {
        $(fn $m<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
            let r = self.int(visitor);
            r
        })*
    };
}

impl<'a> de::Deserializer<'a> for NodeDe<'a> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        let node = self.node;
        let path = self.path.clone();
        self.any(visitor).map_err(|mut e| {
            if e.located.is_none() {
                e.located = Some((node.span.clone(), path));
            }
            e
        })
    }

    fn deserialize_bool<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.scalar().and_then(|s| s.as_bool()) {
            Some(b) => visitor.visit_bool(b).map_err(|e| self.locate(e)),
            None => Err(self.expected("a boolean (true or false)")),
        }
    }

    forward_int!(deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
                 deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64);

    fn deserialize_f32<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_f64<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.scalar().map(|s| s.resolve()) {
            Some(Resolved::Int(i)) => visitor.visit_f64(i as f64),
            Some(Resolved::Float(f)) => visitor.visit_f64(f),
            _ => Err(self.expected("a number")),
        }
    }

    fn deserialize_char<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        // Any scalar is acceptable as a string, as written: `version: 1.10`
        // stays "1.10". Null is not a string.
        match self.scalar() {
            Some(s) if !(s.plain && s.resolve() == Resolved::Null) => visitor
                .visit_borrowed_str(s.text.as_str())
                .map_err(|e| self.locate(e)),
            _ => Err(self.expected("a string")),
        }
    }

    fn deserialize_string<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.node.is_null() {
            visitor.visit_none()
        } else {
            let node = self.node;
            let path = self.path.clone();
            visitor.visit_some(self).map_err(|mut e| {
                if e.located.is_none() {
                    e.located = Some((node.span.clone(), path));
                }
                e
            })
        }
    }

    fn deserialize_unit<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.node.is_null() {
            visitor.visit_unit()
        } else {
            Err(self.expected("nothing (null)"))
        }
    }

    fn deserialize_unit_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Seq(items) => {
                let r = visitor.visit_seq(SeqAccess {
                    de: &self,
                    items,
                    index: 0,
                });
                r.map_err(|e| self.locate(e))
            }
            // A null list is an empty list (`runcmd:` with nothing under it).
            Value::Scalar(_) if self.node.is_null() => {
                let r = visitor.visit_seq(SeqAccess {
                    de: &self,
                    items: &[],
                    index: 0,
                });
                r.map_err(|e| self.locate(e))
            }
            _ => Err(self.expected("a list")),
        }
    }

    fn deserialize_tuple<V: Visitor<'a>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Map(entries) => {
                let r = visitor.visit_map(MapAccess {
                    de: &self,
                    entries,
                    index: 0,
                });
                r.map_err(|e| self.locate(e))
            }
            Value::Scalar(_) if self.node.is_null() => {
                let r = visitor.visit_map(MapAccess {
                    de: &self,
                    entries: &[],
                    index: 0,
                });
                r.map_err(|e| self.locate(e))
            }
            _ => Err(self.expected("a map")),
        }
    }

    fn deserialize_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        if let Value::Map(entries) = &self.node.value {
            for e in entries {
                if !fields.contains(&e.key.as_str()) {
                    let mut path = self.path.clone();
                    path.push(PathSeg::Key(e.key.clone()));
                    let mut p = Problem::new(e.key_span.clone(), path, unknown_msg(&e.key, fields));
                    p.unknown_key = true;
                    self.unknown.borrow_mut().push(p);
                }
            }
        }
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'a>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match self.scalar() {
            Some(s) if variants.contains(&s.text.as_str()) => {
                let d: de::value::StrDeserializer<'_, DeError> =
                    s.text.as_str().into_deserializer();
                visitor.visit_enum(d).map_err(|e| self.locate(e))
            }
            _ => Err(self.locate(DeError {
                message: format!(
                    "expected one of {}, found {}",
                    variants.join(", "),
                    match self.scalar() {
                        Some(s) => format!("{:?}", s.text),
                        None => self.node.kind().to_string(),
                    }
                ),
                located: None,
            })),
        }
    }

    fn deserialize_identifier<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
}

fn unknown_msg(key: &str, fields: &[&str]) -> String {
    let close = fields
        .iter()
        .map(|f| (distance(key, f), *f))
        .filter(|(d, f)| *d <= 2.max(f.len() / 4))
        .min();
    match close {
        Some((_, f)) => format!("unknown key (did you mean {f}?)"),
        None if fields.len() <= 12 => {
            format!("unknown key (expected one of: {})", fields.join(", "))
        }
        None => "unknown key".to_string(),
    }
}

/// Levenshtein distance, for "did you mean" hints.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

struct SeqAccess<'a, 'b> {
    de: &'b NodeDe<'a>,
    items: &'a [Node],
    index: usize,
}

impl<'a> de::SeqAccess<'a> for SeqAccess<'a, '_> {
    type Error = DeError;

    fn next_element_seed<T: de::DeserializeSeed<'a>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let Some(item) = self.items.get(self.index) else {
            return Ok(None);
        };
        let child = self.de.child(item, PathSeg::Index(self.index));
        self.index += 1;
        let span = child.node.span.clone();
        let path = child.path.clone();
        seed.deserialize(child).map(Some).map_err(|mut e| {
            if e.located.is_none() {
                e.located = Some((span, path));
            }
            e
        })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len() - self.index)
    }
}

struct MapAccess<'a, 'b> {
    de: &'b NodeDe<'a>,
    entries: &'a [super::node::Entry],
    index: usize,
}

impl<'a> de::MapAccess<'a> for MapAccess<'a, '_> {
    type Error = DeError;

    fn next_key_seed<K: de::DeserializeSeed<'a>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some(entry) = self.entries.get(self.index) else {
            return Ok(None);
        };
        let key: de::value::BorrowedStrDeserializer<'a, DeError> =
            de::value::BorrowedStrDeserializer::new(entry.key.as_str());
        let mut path = self.de.path.clone();
        path.push(PathSeg::Key(entry.key.clone()));
        seed.deserialize(key).map(Some).map_err(|mut e| {
            if e.located.is_none() {
                e.located = Some((entry.key_span.clone(), path));
            }
            e
        })
    }

    fn next_value_seed<V: de::DeserializeSeed<'a>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, DeError> {
        let Some(entry) = self.entries.get(self.index) else {
            return Err(de::Error::custom("value without a key"));
        };
        self.index += 1;
        let child = self.de.child(&entry.value, PathSeg::Key(entry.key.clone()));
        let span = child.node.span.clone();
        let path = child.path.clone();
        seed.deserialize(child).map_err(|mut e| {
            if e.located.is_none() {
                e.located = Some((span, path));
            }
            e
        })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len() - self.index)
    }
}
