//! `ros config`: get, set, merge, export, validate.

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Subcommand;

use crate::config::node::{parse_document, parse_value, to_yaml, Node, Value};
use crate::config::{disk, merge, path, redact, validate, validate_document};
use crate::paths::Paths;

/// `ros config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Print the value at a dotted key (scalars plain, maps as YAML).
    Get {
        /// Dotted key, e.g. ros.network.dns.nameservers.
        key: String,
    },
    /// Set a dotted key; the value is parsed as YAML. Writes cloud-config.yml.
    Set {
        /// Dotted key.
        key: String,
        /// Value (YAML: `true`, `[a,b]`, `{k: v}`, or text).
        value: String,
    },
    /// Merge YAML (stdin, or -i FILE) into cloud-config.yml.
    Merge {
        /// Read from FILE instead of stdin.
        #[arg(short, long, value_name = "FILE")]
        input: Option<PathBuf>,
    },
    /// Print the merged config (secrets hidden unless --private).
    Export {
        /// Write to FILE instead of stdout.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Include secrets (SSH host keys, TLS keys, tokens).
        #[arg(short, long)]
        private: bool,
        /// Include the shipped defaults (os-config.yml).
        #[arg(short, long)]
        full: bool,
    },
    /// Check a cloud-config; one line per problem, non-zero exit if any.
    Validate {
        /// The file to check (stdin when absent).
        #[arg(short, long, value_name = "FILE")]
        input: Option<PathBuf>,
    },
}

/// Run one `ros config` subcommand; returns the exit code.
pub fn run(paths: &Paths, cmd: ConfigCmd) -> Result<i32> {
    match cmd {
        ConfigCmd::Get { key } => get(paths, &key),
        ConfigCmd::Set { key, value } => {
            let local = load_local(paths)?;
            let mut tree = local;
            path::set(&mut tree, &key, parse_value("value", &value)).map_err(anyhow::Error::msg)?;
            save_checked(paths, tree, &format!("ros config set {key}"))
        }
        ConfigCmd::Merge { input } => {
            let (name, bytes) = read_input(input.as_ref())?;
            if bytes.contains(&b'\r') {
                bail!(
                    "{name}: contains CR characters (Windows line endings); convert it to LF first"
                );
            }
            let over = parse_document(&name, &bytes).map_err(|p| anyhow::anyhow!("{p}"))?;
            let tree = merge::merge(load_local(paths)?, merge::normalize(over));
            save_checked(paths, tree, &name)
        }
        ConfigCmd::Export {
            output,
            private,
            full,
        } => {
            let layers = disk::load(paths);
            report_read_problems(&layers.problems);
            let mut tree = merge::normalize(layers.merged(full));
            redact::redact(&mut tree, private);
            let text = to_yaml(&tree);
            match output {
                Some(p) => disk::write_atomic(&p, text.as_bytes(), 0o600)?,
                None => std::io::stdout().write_all(text.as_bytes())?,
            }
            Ok(0)
        }
        ConfigCmd::Validate { input } => {
            let (name, bytes) = read_input(input.as_ref())?;
            let problems = validate_document(&name, &bytes);
            for p in &problems {
                println!("{p}");
            }
            Ok(if problems.is_empty() { 0 } else { 1 })
        }
    }
}

fn get(paths: &Paths, key: &str) -> Result<i32> {
    let layers = disk::load(paths);
    report_read_problems(&layers.problems);
    let tree = layers.merged(true);
    match path::get(&tree, key).map_err(anyhow::Error::msg)? {
        Some(node) => {
            match &node.value {
                Value::Scalar(s) if !node.is_null() => println!("{}", s.text),
                Value::Scalar(_) => {}
                _ => print!("{}", to_yaml(node)),
            }
            Ok(0)
        }
        None => {
            eprintln!("ros config get: {key} is not set");
            Ok(1)
        }
    }
}

fn report_read_problems(problems: &[crate::config::Problem]) {
    for p in problems {
        eprintln!("warning: {p} (layer skipped)");
    }
}

fn load_local(paths: &Paths) -> Result<Node> {
    let file = paths.cloud_config();
    match std::fs::read(&file) {
        Ok(bytes) => parse_document(&file.display().to_string(), &bytes)
            .map(merge::normalize)
            .map_err(|p| anyhow::anyhow!("{p}")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Node::empty_map(
            crate::config::Span::synthetic("cloud-config.yml"),
        )),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", file.display())),
    }
}

/// Validate the new local layer on its own and write it only when clean.
fn save_checked(paths: &Paths, tree: Node, what: &str) -> Result<i32> {
    let (_, problems) = validate(&tree);
    if !problems.is_empty() {
        eprintln!("{what}: not saved, the result does not validate:");
        for p in &problems {
            eprintln!("  {}: {}", p.key(), p.message);
        }
        return Ok(1);
    }
    disk::save_local(paths, &tree)?;
    Ok(0)
}

fn read_input(input: Option<&PathBuf>) -> Result<(String, Vec<u8>)> {
    match input {
        Some(p) => {
            let bytes = std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?;
            Ok((p.display().to_string(), bytes))
        }
        None => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("cannot read stdin")?;
            Ok(("<stdin>".to_string(), bytes))
        }
    }
}
