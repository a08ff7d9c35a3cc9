//! docker-compose.yml (v1 and v2) + rancher-compose.yml → a typed
//! [`StackSpec`], with every problem positioned (`file:line:col: key: message`)
//! and carrying a Rancher API code.
//!
//! Flow: bytes → [`crate::config::node::parse`] (positioned tree) →
//! known-but-unsupported keys reported and removed → [`crate::config::de::from_node`]
//! into the `raw` structs (type errors and unknown keys, by name) → `convert`
//! (syntax of ports, sizes, volumes …, references between services, Rancher's
//! rules) → [`StackSpec`]. Nothing is dropped silently: a file either yields
//! a stack or the full list of what is wrong.

pub mod fields;
pub mod interpolate;
pub mod model;
pub mod names;
pub mod raw;

mod convert;

use std::fmt;

use crate::config::de::from_node;
use crate::config::node::{parse, Node, Span, Value};
use crate::config::problem::{PathSeg, Problem};

pub use model::*;
pub use names::{validate_name, validate_unique, ErrorCode, NameError};

/// One problem in a compose file, with its API code.
#[derive(Clone, Debug, PartialEq)]
pub struct ComposeProblem {
    /// The API validation code (`InvalidCharacters`, `MissingRequired` …).
    pub code: ErrorCode,
    /// Where and what.
    pub problem: Problem,
}

impl fmt::Display for ComposeProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.problem.fmt(f)
    }
}

/// A compose pair that does not make a stack.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ComposeError {
    /// Every problem found, in file then line order.
    #[error("invalid compose files:\n{}", render(.0))]
    Invalid(Vec<ComposeProblem>),
}

impl ComposeError {
    /// The problems.
    pub fn problems(&self) -> &[ComposeProblem] {
        match self {
            ComposeError::Invalid(p) => p,
        }
    }
}

fn render(problems: &[ComposeProblem]) -> String {
    problems
        .iter()
        .map(|p| format!("  {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// One input file: its name (for positions) and bytes.
#[derive(Clone, Copy, Debug)]
pub struct Source<'a> {
    /// File name as the user knows it.
    pub name: &'a str,
    /// Contents.
    pub bytes: &'a [u8],
}

/// Parse a stack from its docker-compose file and optional rancher-compose file.
pub fn parse_stack(
    stack: &str,
    docker: Source<'_>,
    rancher: Option<Source<'_>>,
) -> Result<StackSpec, ComposeError> {
    let mut problems = Problems::default();
    if let Err(e) = validate_name("stack", stack) {
        problems.push(
            e.code,
            Span::synthetic("stack name"),
            Vec::new(),
            e.to_string(),
        );
    }
    let docker = read_docker(docker, &mut problems);
    let rancher = rancher.and_then(|r| read_rancher(r, &mut problems));
    let spec = docker.map(|d| convert::stack(stack, d, rancher, &mut problems));
    problems.finish(spec)
}

/// Problems collected so far.
#[derive(Default)]
pub(crate) struct Problems(Vec<ComposeProblem>);

impl Problems {
    pub(crate) fn push(&mut self, code: ErrorCode, span: Span, path: Vec<PathSeg>, msg: String) {
        self.0.push(ComposeProblem {
            code,
            problem: Problem::new(span, path, msg),
        });
    }

    fn extend_de(&mut self, list: Vec<Problem>) {
        self.0.extend(list.into_iter().map(|p| ComposeProblem {
            code: if p.unknown_key {
                ErrorCode::InvalidOption
            } else {
                ErrorCode::InvalidFormat
            },
            problem: p,
        }));
    }

    fn finish<T>(mut self, value: Option<T>) -> Result<T, ComposeError> {
        self.0.sort_by(|a, b| {
            let (a, b) = (&a.problem, &b.problem);
            (&*a.span.source, a.span.line, a.span.col, a.key()).cmp(&(
                &*b.span.source,
                b.span.line,
                b.span.col,
                b.key(),
            ))
        });
        self.0.dedup();
        match value {
            Some(v) if self.0.is_empty() => Ok(v),
            _ => Err(ComposeError::Invalid(self.0)),
        }
    }
}

/// A parsed file: its tree (for positions), where its services live, the
/// typed services.
pub(crate) struct Parsed<S> {
    pub tree: Node,
    pub base: Vec<PathSeg>,
    pub version: ComposeVersion,
    pub services: std::collections::BTreeMap<String, Option<S>>,
    pub volumes: std::collections::BTreeMap<String, Option<raw::VolumeDef>>,
    pub networks: Vec<String>,
}

impl<S> Parsed<S> {
    /// The span of `path` under the services map (the deepest existing node).
    pub fn span(&self, rel: &[PathSeg]) -> (Span, Vec<PathSeg>) {
        let mut path = self.base.clone();
        path.extend_from_slice(rel);
        (locate(&self.tree, &path), path)
    }
}

/// The span of the node at `path` (a scalar's own span; a map key's span
/// for maps, lists and nulls), or of its deepest existing ancestor.
pub(crate) fn locate(tree: &Node, path: &[PathSeg]) -> Span {
    let mut node = tree;
    let mut span = tree.span.clone();
    for seg in path {
        let found = match (seg, &node.value) {
            (PathSeg::Key(k), Value::Map(m)) => m
                .iter()
                .find(|e| &e.key == k)
                .map(|e| (e.key_span.clone(), &e.value)),
            (PathSeg::Index(i), Value::Seq(v)) => v.get(*i).map(|n| (n.span.clone(), n)),
            _ => None,
        };
        let Some((s, n)) = found else {
            return span;
        };
        span = s;
        node = n;
    }
    if matches!(node.value, Value::Scalar(_)) && !node.is_null() {
        node.span.clone()
    } else {
        span
    }
}

fn key(k: &str) -> PathSeg {
    PathSeg::Key(k.to_string())
}

/// Detect the format: a top-level `version` means v2.
fn version_of(tree: &Node, problems: &mut Problems) -> Option<ComposeVersion> {
    let Some(v) = tree.get("version") else {
        return Some(ComposeVersion::V1);
    };
    let text = v.as_str().unwrap_or_default();
    if text == "2" || text.starts_with("2.") {
        return Some(ComposeVersion::V2);
    }
    problems.push(
        ErrorCode::InvalidOption,
        v.span.clone(),
        vec![key("version")],
        format!("compose file version {text:?} is not supported (use version \"2\" or none)"),
    );
    None
}

/// Report and remove known-but-unsupported keys of every service map.
fn strip_unsupported(
    tree: &mut Node,
    base: &[PathSeg],
    table: &[(&str, &str)],
    problems: &mut Problems,
) {
    let mut services = &mut *tree;
    for seg in base {
        match services.child_mut(seg) {
            Some(n) => services = n,
            None => return,
        }
    }
    let Some(entries) = services.as_map_mut() else {
        return;
    };
    for svc in entries.iter_mut() {
        let Some(keys) = svc.value.as_map_mut() else {
            continue;
        };
        keys.retain(|e| match table.iter().find(|(k, _)| *k == e.key) {
            Some((k, why)) => {
                let mut path = base.to_vec();
                path.push(PathSeg::Key(svc.key.clone()));
                path.push(key(k));
                problems.push(
                    ErrorCode::InvalidOption,
                    e.key_span.clone(),
                    path,
                    why.to_string(),
                );
                false
            }
            None => true,
        });
    }
}

fn read_tree(src: Source<'_>, problems: &mut Problems) -> Option<Node> {
    match parse(src.name, src.bytes) {
        Ok(t) if t.is_null() => Some(Node::empty_map(t.span)),
        Ok(t) if t.as_map().is_some() => Some(t),
        Ok(t) => {
            problems.push(
                ErrorCode::InvalidFormat,
                t.span.clone(),
                Vec::new(),
                format!(
                    "a compose file must be a map (of services, or version and services), found {}",
                    t.kind()
                ),
            );
            None
        }
        Err(p) => {
            problems.push(ErrorCode::InvalidFormat, p.span, p.path, p.message);
            None
        }
    }
}

fn read_docker(src: Source<'_>, problems: &mut Problems) -> Option<Parsed<raw::DockerService>> {
    let mut tree = read_tree(src, problems)?;
    let version = version_of(&tree, problems)?;
    let base = match version {
        ComposeVersion::V1 => Vec::new(),
        ComposeVersion::V2 => vec![key("services")],
    };
    if version == ComposeVersion::V1 {
        if let Some(e) = tree
            .as_map()
            .and_then(|m| m.iter().find(|e| e.key == "services"))
        {
            problems.push(
                ErrorCode::InvalidOption,
                e.key_span.clone(),
                vec![key("services")],
                "services: needs version: \"2\" at the top of the file".to_string(),
            );
            return None;
        }
    }
    strip_unsupported(&mut tree, &base, raw::UNSUPPORTED_SERVICE_KEYS, problems);
    let (services, volumes, networks) = match version {
        ComposeVersion::V1 => {
            let (s, p) = from_node(&tree);
            problems.extend_de(p);
            (s.unwrap_or_default(), Default::default(), Vec::new())
        }
        ComposeVersion::V2 => {
            let (f, p) = from_node::<raw::DockerFileV2>(&tree);
            problems.extend_de(p);
            let f = f.unwrap_or_default();
            (f.services, f.volumes, f.networks.into_keys().collect())
        }
    };
    Some(Parsed {
        tree,
        base,
        version,
        services,
        volumes,
        networks,
    })
}

fn read_rancher(src: Source<'_>, problems: &mut Problems) -> Option<Parsed<raw::RancherService>> {
    let mut tree = read_tree(src, problems)?;
    let version = version_of(&tree, problems)?;
    let base = match version {
        ComposeVersion::V1 => Vec::new(),
        ComposeVersion::V2 => vec![key("services")],
    };
    strip_unsupported(&mut tree, &base, raw::UNSUPPORTED_RANCHER_KEYS, problems);
    let services = match version {
        ComposeVersion::V1 => {
            let (s, p) = from_node(&tree);
            problems.extend_de(p);
            s.unwrap_or_default()
        }
        ComposeVersion::V2 => {
            let (f, p) = from_node::<raw::RancherFileV2>(&tree);
            problems.extend_de(p);
            f.unwrap_or_default().services
        }
    };
    Some(Parsed {
        tree,
        base,
        version,
        services,
        volumes: Default::default(),
        networks: Vec::new(),
    })
}

#[cfg(test)]
mod tests;
