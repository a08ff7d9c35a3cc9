//! system-docker's image store, built at image build time (issue 16).
//!
//! `build/sysstore.sh` runs a real dockerd at build time, `docker load`s the
//! merged system-image archive into an empty data root and ships that data
//! root's `image/` and `overlay2/` trees in the read-only squashfs store.
//! Before PID 1 starts system-dockerd, [`install`] merges it into the node's
//! data root (tmpfs on a live boot, the state disk otherwise):
//!
//! - every layer's `overlay2/<id>/diff` becomes a symlink into the store, so
//!   the layers are never decompressed, copied or checksummed at boot — the
//!   kernel's overlayfs reads them from the squashfs as lower directories;
//! - every other file (image configs, layer metadata, `l/` short links) is
//!   copied when missing; files are content-addressed, so what exists stays;
//! - `repositories.json` (the tags) is merged: the store's tags win, the
//!   node's other tags stay.
//!
//! A stamp (`.ros-store-id` in the data root, the store's `store-id`) makes
//! a second boot of the same image do nothing. Docker itself never writes
//! into an image layer's `diff`, and removing an image removes only the
//! symlink.

use std::path::{Path, PathBuf};

/// What one [`install`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Installed {
    /// Layers linked into the store now.
    pub layers: usize,
    /// Metadata files copied now.
    pub files: usize,
    /// True when the stamp said this store was installed before.
    pub already: bool,
}

/// Errors, each naming the path.
#[derive(Debug, thiserror::Error)]
#[error("{what} {}", path.display())]
pub struct InstallError {
    what: &'static str,
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

fn err(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> InstallError {
    let path = path.to_path_buf();
    move |source| InstallError { what, path, source }
}

const STAMP: &str = ".ros-store-id";
const REPOS: &str = "image/overlay2/repositories.json";

/// Merge the prebuilt store `src` into the data root `data`.
pub fn install(src: &Path, data: &Path) -> Result<Installed, InstallError> {
    let id_path = src.join("store-id");
    let id = std::fs::read_to_string(&id_path).map_err(err("cannot read", &id_path))?;
    let stamp = data.join(STAMP);
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(id.as_str()) {
        return Ok(Installed {
            already: true,
            ..Installed::default()
        });
    }
    let mut done = Installed::default();
    for top in ["image", "overlay2"] {
        let from = src.join(top);
        if from.is_dir() {
            walk(&from, &data.join(top), top == "overlay2", 0, &mut done)?;
        }
    }
    merge_repositories(&src.join(REPOS), &data.join(REPOS))?;
    std::fs::write(&stamp, &id).map_err(err("cannot write", &stamp))?;
    Ok(done)
}

fn walk(
    from: &Path,
    to: &Path,
    overlay: bool,
    depth: usize,
    done: &mut Installed,
) -> Result<(), InstallError> {
    let meta = std::fs::symlink_metadata(from).map_err(err("cannot stat", from))?;
    let ft = meta.file_type();
    // overlay2/<layer>/diff: the layer itself, linked, never copied
    if overlay && depth == 2 && ft.is_dir() && from.file_name() == Some("diff".as_ref()) {
        if std::fs::symlink_metadata(to).is_err() {
            std::os::unix::fs::symlink(from, to).map_err(err("cannot link", to))?;
            done.layers += 1;
        }
        return Ok(());
    }
    if ft.is_dir() {
        if !to.is_dir() {
            std::fs::create_dir_all(to).map_err(err("cannot create", to))?;
            std::fs::set_permissions(to, meta.permissions()).map_err(err("cannot chmod", to))?;
        }
        let entries = std::fs::read_dir(from).map_err(err("cannot read", from))?;
        for e in entries {
            let e = e.map_err(err("cannot read", from))?;
            walk(&e.path(), &to.join(e.file_name()), overlay, depth + 1, done)?;
        }
    } else if ft.is_symlink() {
        if std::fs::symlink_metadata(to).is_err() {
            let target = std::fs::read_link(from).map_err(err("cannot read link", from))?;
            std::os::unix::fs::symlink(target, to).map_err(err("cannot link", to))?;
        }
    } else if ft.is_file() && !to.exists() && !from.ends_with(REPOS) {
        std::fs::copy(from, to).map_err(err("cannot copy to", to))?;
        done.files += 1;
    }
    Ok(())
}

/// Tags: `{"Repositories": {repo: {"repo:tag": "sha256:…"}}}`; the store's
/// tags replace the node's for the same name, other tags stay.
fn merge_repositories(src: &Path, dst: &Path) -> Result<(), InstallError> {
    let read = |p: &Path| -> Result<serde_json::Value, InstallError> {
        let text = std::fs::read_to_string(p).map_err(err("cannot read", p))?;
        serde_json::from_str(&text).map_err(|e| InstallError {
            what: "not JSON:",
            path: p.to_path_buf(),
            source: std::io::Error::other(e),
        })
    };
    if !src.exists() {
        return Ok(());
    }
    let theirs = read(src)?;
    // a node's unreadable tag file is replaced: the images it names are
    // still in the store and the system's own tags come back
    let mut ours = if dst.exists() {
        read(dst).unwrap_or_else(|_| serde_json::json!({"Repositories": {}}))
    } else {
        serde_json::json!({"Repositories": {}})
    };
    if !ours["Repositories"].is_object() {
        ours["Repositories"] = serde_json::json!({});
    }
    if let Some(repos) = theirs["Repositories"].as_object() {
        for (name, tags) in repos {
            let slot = &mut ours["Repositories"][name];
            if !slot.is_object() {
                *slot = serde_json::json!({});
            }
            if let Some(tags) = tags.as_object() {
                for (t, id) in tags {
                    slot[t] = id.clone();
                }
            }
        }
    }
    if let Some(dir) = dst.parent() {
        std::fs::create_dir_all(dir).map_err(err("cannot create", dir))?;
    }
    let tmp = dst.with_extension("json.ros-tmp");
    std::fs::write(&tmp, ours.to_string()).map_err(err("cannot write", &tmp))?;
    std::fs::rename(&tmp, dst).map_err(err("cannot replace", dst))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path, id: &str) {
        let w = |p: &str, s: &str| {
            let p = dir.join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, s).unwrap();
        };
        w("store-id", id);
        w("overlay2/aaa/diff/bin/sh", "busybox");
        w("overlay2/aaa/link", "AAA");
        w("overlay2/bbb/diff/etc/x", "x");
        w("overlay2/bbb/lower", "l/AAA");
        std::fs::create_dir_all(dir.join("overlay2/bbb/work")).unwrap();
        std::fs::create_dir_all(dir.join("overlay2/l")).unwrap();
        std::os::unix::fs::symlink("../aaa/diff", dir.join("overlay2/l/AAA")).unwrap();
        w("image/overlay2/imagedb/content/sha256/img1", "{}");
        w(
            REPOS,
            r#"{"Repositories":{"ros/base":{"ros/base:0.1.0":"sha256:new"}}}"#,
        );
    }

    #[test]
    fn links_layers_copies_metadata_merges_tags_once() {
        let t = tempfile::tempdir().unwrap();
        let (src, data) = (t.path().join("store"), t.path().join("data"));
        store(&src, "one");
        std::fs::create_dir_all(data.join("image/overlay2")).unwrap();
        std::fs::write(
            data.join(REPOS),
            r#"{"Repositories":{"ros/base":{"ros/base:0.1.0":"sha256:old"},"mine":{"mine:1":"sha256:m"}}}"#,
        )
        .unwrap();
        let r = install(&src, &data).unwrap();
        assert_eq!((r.layers, r.already), (2, false));
        assert!(r.files >= 3, "{r:?}");
        // a layer is a link into the store, readable through the short link
        assert!(std::fs::symlink_metadata(data.join("overlay2/aaa/diff"))
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(
            std::fs::read_to_string(data.join("overlay2/l/AAA/bin/sh")).unwrap(),
            "busybox"
        );
        assert!(data.join("overlay2/bbb/work").is_dir());
        assert_eq!(
            std::fs::read_to_string(data.join("overlay2/bbb/lower")).unwrap(),
            "l/AAA"
        );
        let tags: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(data.join(REPOS)).unwrap()).unwrap();
        assert_eq!(
            tags["Repositories"]["ros/base"]["ros/base:0.1.0"],
            "sha256:new"
        );
        assert_eq!(tags["Repositories"]["mine"]["mine:1"], "sha256:m");
        // the second boot of the same image does nothing
        assert!(install(&src, &data).unwrap().already);
        // a new image adds its layers and keeps what is there
        let src2 = t.path().join("store2");
        store(&src2, "two");
        std::fs::create_dir_all(src2.join("overlay2/ccc/diff")).unwrap();
        let r = install(&src2, &data).unwrap();
        assert_eq!((r.layers, r.already), (1, false));
    }

    #[test]
    fn a_missing_store_id_is_an_error_naming_the_path() {
        let t = tempfile::tempdir().unwrap();
        let e = install(&t.path().join("nope"), &t.path().join("data")).unwrap_err();
        assert!(e.to_string().contains("nope/store-id"), "{e}");
    }
}
