//! Cloud-config: types, parsing, layering, validation and datasources.
//!
//! Data flow: bytes → [`node::parse_document`] (a positioned tree per layer)
//! → [`merge::merge_layers`] (os-config.yml < cloud-config.d/*.yml <
//! cloud-config.yml < kernel command line) → [`validate`] (typed
//! [`CloudConfig`] plus every [`Problem`] with file:line:col and key).
//!
//! Everything here is pure except [`disk`] (reads layers, writes
//! cloud-config.yml atomically) and [`datasource`] (reads config drives,
//! fetches URLs); both keep their I/O at the edge and hand bytes to the pure
//! functions.

pub mod cmdline;
pub mod datasource;
pub mod de;
pub mod disk;
pub mod engine;
pub mod merge;
pub mod network;
pub mod node;
pub mod path;
pub mod problem;
pub mod redact;
pub mod service;
pub mod types;
pub mod values;

pub use node::{Node, Span};
pub use problem::Problem;
pub use types::CloudConfig;

/// The shipped defaults, compiled in so `ros` works on any machine; a file at
/// [`crate::paths::Paths::os_config`] takes precedence at run time.
pub const OS_CONFIG_YML: &str = include_str!("../../os-config/os-config.yml");

/// Validate a (merged or single) tree: the typed config built from every
/// valid part, and every problem found. Unknown keys are problems flagged
/// `unknown_key`; callers decide whether those are errors (`validate`) or
/// warnings (boot).
pub fn validate(tree: &Node) -> (CloudConfig, Vec<Problem>) {
    let tree = merge::normalize(tree.clone());
    let (cfg, problems) = de::from_node::<CloudConfig>(&tree);
    (cfg.unwrap_or_default(), problems)
}

/// Parse and validate one document (`ros config validate -i FILE`).
pub fn validate_document(source: &str, bytes: &[u8]) -> Vec<Problem> {
    // `#cloud-config` is a YAML comment: no header handling is needed.
    match node::parse_document(source, bytes) {
        Ok(tree) => validate(&tree).1,
        Err(p) => vec![p],
    }
}

#[cfg(test)]
mod tests;

/// The fuzzing entry point: parse, validate, merge onto the defaults, render
/// and re-parse arbitrary bytes. Must never panic; used by `fuzz/` and by a
/// unit test that replays the fixtures with mutations.
pub fn fuzz_one(bytes: &[u8]) {
    let _ = validate_document("fuzz", bytes);
    if let Ok(tree) = node::parse_document("fuzz", bytes) {
        let defaults = node::parse_document("os-config.yml", OS_CONFIG_YML.as_bytes())
            .unwrap_or_else(|_| Node::empty_map(Span::synthetic("x")));
        let merged = merge::merge_layers(defaults, [tree]);
        let (_, _) = validate(&merged);
        let text = node::to_yaml(&merged);
        let _ = node::parse_document("again", text.as_bytes());
        let _ = path::get(&merged, "ros.network.interfaces");
    }
    if let Ok(s) = std::str::from_utf8(bytes) {
        let c = cmdline::parse("cmdline", s);
        let _ = validate(&c.layer);
    }
    let _ = datasource::decode_user_data("fuzz", bytes);
}
