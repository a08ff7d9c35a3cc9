//! A problem found in a cloud-config: where (file:line:col), which key, what.
//!
//! Every parse, type and schema error becomes a [`Problem`], so `ros config
//! validate` and the boot log print the same one-line form:
//! `file:line:col: key: message`.

use std::fmt;

use super::node::Span;

/// One step of a key path: a map key or a list index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathSeg {
    /// A map key.
    Key(String),
    /// A list index.
    Index(usize),
}

/// Render a key path the way users write it: `ros.network.interfaces.eth0.vlans[1]`.
pub fn path_string(path: &[PathSeg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            PathSeg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            PathSeg::Index(i) => {
                s.push_str(&format!("[{i}]"));
            }
        }
    }
    s
}

/// A positioned problem in a config document.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    /// Where it is.
    pub span: Span,
    /// Which key (empty for whole-document problems).
    pub path: Vec<PathSeg>,
    /// What is wrong, and what was expected.
    pub message: String,
    /// Unknown keys are the only kind that may be a warning.
    pub unknown_key: bool,
}

impl Problem {
    /// A problem at `span` for `path`.
    pub fn new(span: Span, path: Vec<PathSeg>, message: String) -> Problem {
        Problem {
            span,
            path,
            message,
            unknown_key: false,
        }
    }

    /// The key path as text.
    pub fn key(&self) -> String {
        path_string(&self.path)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = self.key();
        if key.is_empty() {
            write!(f, "{}: {}", self.span, self.message)
        } else {
            write!(f, "{}: {}: {}", self.span, key, self.message)
        }
    }
}

impl std::error::Error for Problem {}
