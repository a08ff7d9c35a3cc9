//! Small value types that accept the several spellings compose and
//! cloud-config allow: a command as a string or a list, environment and
//! labels as a map or as `KEY=VALUE` lines, ulimits as a number or a pair.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A command: `"echo hi"` (run by a shell) or `["echo", "hi"]` (exec form).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Shell form.
    Shell(String),
    /// Exec form.
    Exec(Vec<String>),
}

impl Command {
    /// The argv this command runs: exec form as is, shell form via `sh -c`.
    pub fn argv(&self) -> Vec<String> {
        match self {
            Command::Shell(s) => vec!["/bin/sh".into(), "-c".into(), s.clone()],
            Command::Exec(v) => v.clone(),
        }
    }

    /// Split a shell-form command into words (quotes respected) for exec,
    /// as compose does for `command: nginx -g 'daemon off;'`.
    pub fn words(&self) -> Vec<String> {
        match self {
            Command::Exec(v) => v.clone(),
            Command::Shell(s) => split_words(s),
        }
    }
}

/// Split a command line into words: whitespace separates, single and double
/// quotes group, a backslash escapes the next character.
pub fn split_words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

struct ScalarString;

impl Visitor<'_> for ScalarString {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_unit<E: de::Error>(self) -> Result<String, E> {
        Ok(String::new())
    }
}

/// Any scalar read as its text (`8080`, `true`, `"x"` all become strings).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(ScalarString).map(Text)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Command {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Command;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a command string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Command, E> {
                Ok(Command::Shell(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Command, E> {
                Ok(Command::Shell(v.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Command, A::Error> {
                let mut v = Vec::new();
                while let Some(Text(s)) = seq.next_element()? {
                    v.push(s);
                }
                Ok(Command::Exec(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// A list of strings that may also be written as one string (`dns: 8.8.8.8`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StringList(pub Vec<String>);

impl<'de> Deserialize<'de> for StringList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StringList;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StringList, E> {
                Ok(StringList(vec![v.to_string()]))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<StringList, E> {
                Ok(StringList(vec![v.to_string()]))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<StringList, E> {
                Ok(StringList(vec![v.to_string()]))
            }
            fn visit_unit<E: de::Error>(self) -> Result<StringList, E> {
                Ok(StringList::default())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StringList, A::Error> {
                let mut v = Vec::new();
                while let Some(Text(s)) = seq.next_element()? {
                    v.push(s);
                }
                Ok(StringList(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// `KEY: value` pairs written as a map or as a list of `KEY=value` strings
/// (compose `environment` and `labels`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyValues(pub BTreeMap<String, String>);

impl<'de> Deserialize<'de> for KeyValues {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = KeyValues;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map or a list of KEY=VALUE strings")
            }
            fn visit_unit<E: de::Error>(self) -> Result<KeyValues, E> {
                Ok(KeyValues::default())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<KeyValues, A::Error> {
                let mut m = BTreeMap::new();
                while let Some(Text(s)) = seq.next_element()? {
                    let (k, v) = s.split_once('=').unwrap_or((s.as_str(), ""));
                    m.insert(k.to_string(), v.to_string());
                }
                Ok(KeyValues(m))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<KeyValues, A::Error> {
                let mut m = BTreeMap::new();
                while let Some((k, Text(v))) = map.next_entry::<String, Text>()? {
                    m.insert(k, v);
                }
                Ok(KeyValues(m))
            }
        }
        d.deserialize_any(V)
    }
}

/// A ulimit: one number for both limits, or `{soft, hard}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ulimit {
    /// Soft limit.
    pub soft: i64,
    /// Hard limit.
    pub hard: i64,
}

impl<'de> Deserialize<'de> for Ulimit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ulimit;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number or a map with soft and hard")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Ulimit, E> {
                Ok(Ulimit { soft: v, hard: v })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ulimit, A::Error> {
                let mut u = Ulimit::default();
                while let Some(k) = map.next_key::<String>()? {
                    match k.as_str() {
                        "soft" => u.soft = map.next_value()?,
                        "hard" => u.hard = map.next_value()?,
                        other => {
                            return Err(de::Error::custom(format!(
                                "unknown ulimit key {other:?} (expected soft or hard)"
                            )))
                        }
                    }
                }
                Ok(u)
            }
        }
        d.deserialize_any(V)
    }
}

/// A bool that may also be written as a string (`bridge: "true"` or a name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BoolOrName {
    /// `true` / `false`.
    Bool(bool),
    /// A name.
    Name(String),
}

impl<'de> Deserialize<'de> for BoolOrName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = BoolOrName;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("true, false or a name")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<BoolOrName, E> {
                Ok(BoolOrName::Bool(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<BoolOrName, E> {
                Ok(BoolOrName::Name(v.to_string()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<BoolOrName, E> {
                Ok(match v {
                    "true" => BoolOrName::Bool(true),
                    "false" => BoolOrName::Bool(false),
                    _ => BoolOrName::Name(v.to_string()),
                })
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_words_table() {
        let rows: &[(&str, &[&str])] = &[
            ("a b  c", &["a", "b", "c"]),
            ("nginx -g 'daemon off;'", &["nginx", "-g", "daemon off;"]),
            (r#"sh -c "echo \"hi\"""#, &["sh", "-c", "echo \"hi\""]),
            ("''", &[""]),
            ("", &[]),
            (r"a\ b", &["a b"]),
        ];
        for (input, want) in rows {
            assert_eq!(split_words(input), *want, "input {input:?}");
        }
    }
}
