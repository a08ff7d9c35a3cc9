//! Reading the config layers from disk and writing `cloud-config.yml`.
//!
//! The one file of `config` that touches the filesystem. Reading never
//! fails as a whole: a layer that cannot be read or parsed is reported as a
//! problem and left out, so a bad file never stops a boot. Writing is atomic
//! (temp file, fsync, rename, fsync of the directory) with mode 0600.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::cmdline::{self, Cmdline};
use super::merge::{merge, normalize};
use super::node::{parse_document, to_yaml, Node, Span};
use super::problem::Problem;
use super::{validate, CloudConfig, OS_CONFIG_YML};
use crate::paths::Paths;

/// Errors writing config.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// Could not write a file.
    #[error("cannot write {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// One layer as read.
#[derive(Clone, Debug)]
pub struct Layer {
    /// Where it came from.
    pub source: String,
    /// Its tree (normalized: `rancher:` already renamed).
    pub tree: Node,
}

/// All layers, in merge order, with what went wrong reading them.
#[derive(Clone, Debug)]
pub struct Layers {
    /// os-config.yml (the file, or the compiled-in copy).
    pub defaults: Layer,
    /// cloud-config.d/*.yml in name order.
    pub saved: Vec<Layer>,
    /// cloud-config.yml (an empty map when absent).
    pub local: Layer,
    /// The kernel command line.
    pub cmdline: Cmdline,
    /// Read and parse problems; the layers they name were left out.
    pub problems: Vec<Problem>,
}

impl Layers {
    /// Merge the layers; `full` includes the shipped defaults.
    pub fn merged(&self, full: bool) -> Node {
        let mut acc = if full {
            self.defaults.tree.clone()
        } else {
            Node::empty_map(Span::synthetic("merged"))
        };
        for layer in self.saved.iter().chain(std::iter::once(&self.local)) {
            acc = merge(acc, layer.tree.clone());
        }
        merge(acc, normalize(self.cmdline.layer.clone()))
    }

    /// The merged config, typed, with every problem (read problems first).
    pub fn resolve(&self) -> (Node, CloudConfig, Vec<Problem>) {
        let merged = self.merged(true);
        let (cfg, mut problems) = validate(&merged);
        let mut all = self.problems.clone();
        all.extend(self.cmdline.problems.iter().cloned());
        all.append(&mut problems);
        (merged, cfg, all)
    }
}

fn read_layer(path: &Path, problems: &mut Vec<Problem>) -> Option<Layer> {
    let source = path.display().to_string();
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            problems.push(Problem::new(
                Span::synthetic(&source),
                Vec::new(),
                format!("cannot read: {e}"),
            ));
            return None;
        }
    };
    match parse_document(&source, &bytes) {
        Ok(tree) => Some(Layer {
            source,
            tree: normalize(tree),
        }),
        Err(p) => {
            problems.push(p);
            None
        }
    }
}

/// Read every layer below `paths`.
pub fn load(paths: &Paths) -> Layers {
    let mut problems = Vec::new();
    let defaults = read_layer(&paths.os_config(), &mut problems).unwrap_or_else(|| {
        let tree = parse_document("os-config.yml", OS_CONFIG_YML.as_bytes())
            .map(normalize)
            .unwrap_or_else(|p| {
                problems.push(p);
                Node::empty_map(Span::synthetic("os-config.yml"))
            });
        Layer {
            source: "os-config.yml".to_string(),
            tree,
        }
    });
    let mut saved = Vec::new();
    if let Ok(dir) = fs::read_dir(paths.cloud_config_d()) {
        let mut files: Vec<PathBuf> = dir
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                !name.starts_with('.') && (name.ends_with(".yml") || name.ends_with(".yaml"))
            })
            .collect();
        files.sort();
        for f in files {
            if let Some(l) = read_layer(&f, &mut problems) {
                saved.push(l);
            }
        }
    }
    let local_path = paths.cloud_config();
    let local = read_layer(&local_path, &mut problems).unwrap_or_else(|| Layer {
        source: local_path.display().to_string(),
        tree: Node::empty_map(Span::synthetic(&local_path.display().to_string())),
    });
    let cmdline_path = paths.cmdline();
    let text = fs::read_to_string(&cmdline_path).unwrap_or_default();
    let cmdline = cmdline::parse(&cmdline_path.display().to_string(), text.trim());
    Layers {
        defaults,
        saved,
        local,
        cmdline,
        problems,
    }
}

/// Write `bytes` to `path` atomically with `mode`, creating parent directories.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), DiskError> {
    let err = |source| DiskError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(err)?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("config");
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        // The umask may have narrowed `mode`; set it exactly.
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(err)
}

/// Write the local layer (`cloud-config.yml`), 0600.
pub fn save_local(paths: &Paths, tree: &Node) -> Result<(), DiskError> {
    write_atomic(&paths.cloud_config(), to_yaml(tree).as_bytes(), 0o600)
}
