//! Conformance with a real Rancher client: `gdapi-python` (the client
//! Rancher's own validation suites used) is installed from PyPI into a
//! fresh venv and drives a real cluster (server + 3 agents in network
//! namespaces with their own dockerd) through methods it generates from
//! our schemas — stacks and services in Rancher's shapes (health check,
//! volumes, metadata), scale, `activate`, `upgrade`, `finishupgrade`,
//! `rollback`, `restart`, filters and pagination, and the `/v1`
//! `environment` names. The script is `tests/gdapi_conformance.py`.
//!
//! Needs root (namespaces, dockerd) and PyPI (or pip's cache); skips only
//! when not root.

mod harness;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use harness::*;

/// The client version the script is written against.
const GDAPI: &str = "gdapi-python==0.5.3";

fn venv(dir: &Path) -> std::path::PathBuf {
    let env = dir.join("venv");
    let out = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&env)
        .output()
        .expect("python3 (build/deps.sh installs python3 and python3-venv)");
    assert!(
        out.status.success(),
        "python3 -m venv failed (build/deps.sh installs python3-venv): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pip = env.join("bin/pip");
    let out = Command::new(&pip)
        .args(["install", "--disable-pip-version-check", "-q", GDAPI])
        .output()
        .expect("pip in the venv");
    assert!(
        out.status.success(),
        "pip install {GDAPI} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    env.join("bin/python")
}

#[test]
fn gdapi_python_client_drives_the_cluster() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!(
            "SKIPPED cluster_gdapi: needs root (network namespaces and dockerd); CI runs as root"
        );
        return;
    }
    let t0 = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let python = venv(tmp.path());
    let t_venv = t0.elapsed();
    let mut c = setup();
    join_agents(&mut c);
    let t_cluster = t0.elapsed();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/gdapi_conformance.py");
    let out = Command::new(&python)
        .arg(&script)
        .args([&c.url, IMAGE])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}");
    assert!(
        out.status.success(),
        "the gdapi client failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("gdapi conformance ok"), "{stdout}");
    eprintln!(
        "cluster_gdapi: venv {:?}, cluster {:?}, total {:?}",
        t_venv,
        t_cluster - t_venv,
        t0.elapsed()
    );
}
