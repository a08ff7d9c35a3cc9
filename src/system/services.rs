//! The set of system services: `ros.services` plus every enabled
//! `ros.services_include` entry, read from its service file.
//!
//! An include is a name (looked up as `NAME.yml` in the node's
//! `/var/lib/ros/conf/services/`, then the image's `/usr/share/ros/services/`)
//! or an absolute path to a compose-style file: a map of service names to
//! definitions, optionally under a top-level `services:` key.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::config::de::from_node;
use crate::config::node::parse_document;
use crate::config::service::ServiceConfig;
use crate::config::CloudConfig;
use crate::paths::Paths;

/// Errors reading an included service file.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ServicesError {
    /// No file for an include name.
    #[error("service {name}: no {name}.yml in {}", searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" or "))]
    NotFound {
        /// The include key.
        name: String,
        /// Where it was looked for.
        searched: Vec<PathBuf>,
    },
    /// The file could not be read.
    #[error("service file {path}: {message}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The file does not validate.
    #[error("service file {path} is invalid:\n  {}", problems.join("\n  "))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem, positioned.
        problems: Vec<String>,
    },
    /// The file defines no services.
    #[error("service file {path} defines no services")]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

/// The file an include key refers to.
pub fn include_path(paths: &Paths, key: &str) -> Result<PathBuf, ServicesError> {
    if key.starts_with('/') {
        return Ok(paths.at(key));
    }
    let searched = vec![
        paths.local_services_dir().join(format!("{key}.yml")),
        paths.services_dir().join(format!("{key}.yml")),
    ];
    searched
        .iter()
        .find(|p| p.exists())
        .cloned()
        .ok_or(ServicesError::NotFound {
            name: key.to_string(),
            searched,
        })
}

/// Read and validate a service file.
pub fn read_service_file(path: &PathBuf) -> Result<BTreeMap<String, ServiceConfig>, ServicesError> {
    let bytes = std::fs::read(path).map_err(|e| ServicesError::Read {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let tree = parse_document(&path.display().to_string(), &bytes).map_err(|p| {
        ServicesError::Invalid {
            path: path.clone(),
            problems: vec![p.to_string()],
        }
    })?;
    let tree = match tree.get("services") {
        Some(inner) if inner.as_map().is_some() => inner.clone(),
        _ => tree,
    };
    let (parsed, problems) = from_node::<BTreeMap<String, ServiceConfig>>(&tree);
    if !problems.is_empty() {
        return Err(ServicesError::Invalid {
            path: path.clone(),
            problems: problems.iter().map(ToString::to_string).collect(),
        });
    }
    let parsed = parsed.unwrap_or_default();
    let missing_image: Vec<String> = parsed
        .iter()
        .filter(|(_, s)| s.image.is_empty())
        .map(|(n, _)| format!("{n}: image is required"))
        .collect();
    if !missing_image.is_empty() {
        return Err(ServicesError::Invalid {
            path: path.clone(),
            problems: missing_image,
        });
    }
    if parsed.is_empty() {
        return Err(ServicesError::Empty { path: path.clone() });
    }
    Ok(parsed)
}

/// The service that runs `ros cluster up`, shipped as a service file.
pub const CLUSTER_SERVICE: &str = "cluster";

/// Whether the `cluster` service file is wanted: `ros.cluster.role` is set
/// and neither `ros.services` defines it nor `ros.services_include` turns
/// it off.
pub fn cluster_wanted(cfg: &CloudConfig) -> bool {
    cfg.ros.cluster.role.is_some()
        && !cfg.ros.services.contains_key(CLUSTER_SERVICE)
        && !cfg.ros.services_include.contains_key(CLUSTER_SERVICE)
}

/// Every enabled service, and the problems with includes that were left out.
/// A set `ros.cluster.role` includes the `cluster` service file.
pub fn enabled(
    paths: &Paths,
    cfg: &CloudConfig,
) -> (BTreeMap<String, ServiceConfig>, Vec<ServicesError>) {
    let mut services = cfg.ros.services.clone();
    let mut problems = Vec::new();
    for (key, on) in &cfg.ros.services_include {
        if !on {
            continue;
        }
        match include_path(paths, key).and_then(|p| read_service_file(&p)) {
            Ok(more) => services.extend(more),
            Err(e) => problems.push(e),
        }
    }
    if cluster_wanted(cfg) {
        match include_path(paths, CLUSTER_SERVICE).and_then(|p| read_service_file(&p)) {
            Ok(more) => services.extend(more),
            Err(e) => problems.push(e),
        }
    }
    (services, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// File name, content, and the services it defines or an error fragment.
    type Row<'a> = (&'a str, &'a str, Result<&'a [&'a str], &'a str>);

    #[test]
    fn include_files_table() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path());
        let local = paths.local_services_dir();
        std::fs::create_dir_all(&local).unwrap();
        let rows: &[Row] = &[
            ("plain", "a: {image: x}\nb: {image: y}\n", Ok(&["a", "b"])),
            ("wrapped", "services:\n  c: {image: x}\n", Ok(&["c"])),
            ("noimage", "d: {command: x}\n", Err("d: image is required")),
            ("unknown", "e: {image: x, bogus: 1}\n", Err("bogus")),
            ("empty", "{}\n", Err("defines no services")),
            ("yaml", "f: [\n", Err("invalid")),
        ];
        for (name, text, want) in rows {
            std::fs::write(local.join(format!("{name}.yml")), text).unwrap();
            let got = include_path(&paths, name).and_then(|p| read_service_file(&p));
            match (got, want) {
                (Ok(m), Ok(keys)) => assert_eq!(m.keys().collect::<Vec<_>>(), *keys, "{name}"),
                (Err(e), Err(msg)) => {
                    let e = e.to_string();
                    assert!(e.contains(&format!("{name}.yml")), "{name}: {e}");
                    assert!(e.contains(msg), "{name}: {e}");
                }
                (got, _) => panic!("{name}: unexpected {got:?}"),
            }
        }
        let missing = include_path(&paths, "ghost").unwrap_err().to_string();
        assert!(missing.contains("ghost.yml"), "{missing}");
    }

    #[test]
    fn cluster_role_includes_the_shipped_cluster_service() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path());
        std::fs::create_dir_all(paths.services_dir()).unwrap();
        let shipped = include_str!("../../os-config/services/cluster.yml");
        std::fs::write(paths.services_dir().join("cluster.yml"), shipped).unwrap();
        let cfg =
            |doc: &str| crate::config::validate(&parse_document("t", doc.as_bytes()).unwrap()).0;
        let (s, p) = enabled(&paths, &cfg("ros: {cluster: {role: both}}"));
        assert!(p.is_empty(), "{p:?}");
        let c = &s["cluster"];
        assert_eq!(c.image, "ros/docker:0.1.0");
        assert_eq!(
            c.labels.0.get("io.rancher.os.after").map(String::as_str),
            Some("docker")
        );
        let (s, _) = enabled(&paths, &cfg("{}"));
        assert!(!s.contains_key("cluster"));
        let off = "ros: {cluster: {role: server}, services_include: {cluster: false}}";
        let (s, _) = enabled(&paths, &cfg(off));
        assert!(!s.contains_key("cluster"));
    }
}
