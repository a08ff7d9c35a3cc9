//! Preloaded images: load every `docker save` archive in the preload
//! directory into system-docker, once per content hash.
//!
//! A stamp `STATE/preload/<hash>.done` records an archive as loaded, so a
//! reboot does not load it again (RancherOS lost tens of seconds of every
//! boot reloading images). A corrupt archive is reported by name and
//! skipped; the rest still load.

use std::path::{Path, PathBuf};

use blake2::{Blake2s256, Digest};
use tracing::{info, warn};

use super::engine::{Engine, EngineError};
use crate::paths::Paths;

/// Errors loading one archive.
#[derive(Debug, thiserror::Error)]
pub enum PreloadError {
    /// The archive could not be read.
    #[error("cannot read image archive {path}")]
    Read {
        /// The archive.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The engine refused it.
    #[error("cannot load image archive {path}")]
    Load {
        /// The archive.
        path: PathBuf,
        /// Why.
        #[source]
        source: EngineError,
    },
}

/// What one preload pass did.
#[derive(Debug, Default)]
pub struct PreloadReport {
    /// Archives loaded now.
    pub loaded: Vec<PathBuf>,
    /// Archives skipped because their stamp exists.
    pub skipped: Vec<PathBuf>,
    /// Archives that failed, with why.
    pub failed: Vec<PreloadError>,
}

/// Archives in `dir`: `*.tar`, `*.tar.gz`, `*.tgz`, in name order.
pub fn archives(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                    !n.starts_with('.')
                        && (n.ends_with(".tar") || n.ends_with(".tar.gz") || n.ends_with(".tgz"))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The content hash used for the stamp.
pub fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Blake2s256::digest(bytes))
}

/// The content hash of a file, read in chunks.
pub fn file_hash(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = Blake2s256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(hex::encode(h.finalize()));
        }
        h.update(&buf[..n]);
    }
}

/// The stamp recording that an archive with `hash` was loaded.
pub fn stamp(paths: &Paths, hash: &str) -> PathBuf {
    paths
        .state_dir()
        .join("preload")
        .join(format!("{hash}.done"))
}

/// Load every archive not loaded before.
pub async fn preload<E: Engine>(engine: &E, paths: &Paths) -> PreloadReport {
    let mut report = PreloadReport::default();
    let all = archives(&paths.preload_dir());
    let total = all.len();
    for (i, path) in all.into_iter().enumerate() {
        let p = path.clone();
        let hashed = tokio::task::spawn_blocking(move || file_hash(&p))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        let hash = match hashed {
            Ok(h) => h,
            Err(source) => {
                let e = PreloadError::Read { path, source };
                warn!(error = %crate::system::chain(&e), "preload: skipped");
                report.failed.push(e);
                continue;
            }
        };
        let done = stamp(paths, &hash);
        if done.exists() {
            info!(archive = %path.display(), "[{}/{total}] preload: already loaded", i + 1);
            report.skipped.push(path);
            continue;
        }
        info!(archive = %path.display(), "[{}/{total}] preload: loading", i + 1);
        match engine.load(&path).await {
            Ok(()) => {
                if let Some(dir) = done.parent() {
                    let _ = std::fs::create_dir_all(dir);
                }
                if let Err(e) = std::fs::write(&done, path.display().to_string()) {
                    warn!(stamp = %done.display(), "preload: cannot write stamp: {e}");
                }
                report.loaded.push(path);
            }
            Err(source) => {
                let e = PreloadError::Load { path, source };
                warn!(error = %crate::system::chain(&e), "preload: skipped");
                report.failed.push(e);
            }
        }
    }
    report
}
