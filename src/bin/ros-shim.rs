//! `containerd-shim-runc-v2` as system-containerd finds it (PID 1 puts
//! [`ros::paths::SHIM_DIR`] first in its `PATH`): every system container
//! joins one shim instead of starting one each.
//!
//! containerd runs `containerd-shim-runc-v2 … start` in the container's
//! bundle for every new task. The runc v2 shim reads the bundle's
//! `config.json` there, and when its annotations name a group
//! (`io.containerd.runc.v2.group`, what containerd's CRI uses for a pod)
//! it hands back the group's running shim instead of starting a new one.
//! Docker 20.10 cannot set OCI annotations, so this program adds the
//! group to `config.json` before it runs the real shim with the same
//! arguments, standard input and directory.
//!
//! Why: each shim is a Go daemon with ~2 MB of its own memory and a Go
//! start (~0.1 s of CPU under TCG) on the way of every container start; a
//! node runs ~10 system containers. What it costs: one shim for all of
//! them, so a shim that dies takes every system container with it (their
//! restart policies bring them back). Any error here leaves the container
//! a shim of its own, said on stderr (containerd's log).
//!
//! Small on purpose (of the `ros` library only a path): it runs at every
//! container start.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

/// The runc v2 shim's group annotation.
const GROUP_KEY: &str = "io.containerd.runc.v2.group";
/// The group every system container joins.
const GROUP: &str = "ros-system";

/// Add the group to the OCI spec at `path` unless it names one already.
/// Written to a temporary file and renamed over it.
fn join_group(path: &Path) -> Result<(), String> {
    let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut spec: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let root = spec
        .as_object_mut()
        .ok_or_else(|| format!("{}: not a JSON object", path.display()))?;
    let notes = root
        .entry("annotations")
        .or_insert_with(|| serde_json::Value::Object(Default::default()))
        .as_object_mut()
        .ok_or_else(|| format!("{}: annotations: not an object", path.display()))?;
    if notes.contains_key(GROUP_KEY) {
        return Ok(());
    }
    notes.insert(GROUP_KEY.into(), GROUP.into());
    let tmp = path.with_extension("json.ros-shim");
    let out = serde_json::to_vec(&spec).map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::write(&tmp, out).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

fn main() {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    // `… -id ID start`: the action is the last argument
    if args.last().is_some_and(|a| a == "start") {
        if let Err(e) = join_group(Path::new("config.json")) {
            eprintln!("ros-shim: {e}: this container gets a shim of its own");
        }
    }
    // the shim this stands in front of
    let real = Path::new(ros::paths::STORE_DIR).join("containerd-shim-runc-v2");
    let err = Command::new(&real).args(&args).exec();
    eprintln!("ros-shim: cannot run {}: {err}", real.display());
    std::process::exit(127);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_group_is_added_once_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.json");
        std::fs::write(&p, r#"{"ociVersion":"1.0.2","process":{"args":["sh"]}}"#).unwrap();
        join_group(&p).unwrap();
        join_group(&p).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        assert_eq!(v["annotations"][GROUP_KEY], GROUP);
        assert_eq!(v["process"]["args"][0], "sh");
        assert_eq!(v["annotations"].as_object().unwrap().len(), 1);
        // a group named already stays
        std::fs::write(
            &p,
            r#"{"annotations":{"io.containerd.runc.v2.group":"pod"}}"#,
        )
        .unwrap();
        join_group(&p).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        assert_eq!(v["annotations"][GROUP_KEY], "pod");
    }

    #[test]
    fn a_bad_spec_is_said_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.json");
        std::fs::write(&p, "[1,2]").unwrap();
        let e = join_group(&p).unwrap_err();
        assert!(e.contains("not a JSON object"), "{e}");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "[1,2]");
        let e = join_group(&dir.path().join("missing.json")).unwrap_err();
        assert!(e.contains("missing.json"), "{e}");
    }
}
