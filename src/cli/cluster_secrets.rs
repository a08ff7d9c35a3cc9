//! The server node's own secrets under the state dir: the pre-shared join
//! token (`cluster/token`, k3s-style) and the generated first admin
//! password (`cluster/admin-password`), both mode 0600 and shown by
//! `ros cluster admin-password` (root only).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::cluster::api::access;
use crate::cluster::auth;
use crate::cluster::store::Store;
use crate::paths::Paths;

fn token_path(paths: &Paths) -> PathBuf {
    paths.state_dir().join("cluster").join("token")
}

fn admin_path(paths: &Paths) -> PathBuf {
    paths.state_dir().join("cluster").join("admin-password")
}

/// Write `text` to `path`, readable by root only.
fn write_private(path: &Path, text: &str) -> Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// The join token this server accepts: `given` (`ros.cluster.token`,
/// `--token`), else the one kept in the state dir, else a new random one
/// kept there. A given token with a CA pin (`<secret>.<sha256>`) is kept
/// whole; the server compares the secret part.
pub fn join_token(paths: &Paths, given: Option<&str>) -> Result<String> {
    if let Some(t) = given.map(str::trim).filter(|t| !t.is_empty()) {
        let secret = crate::cluster::agent::token_pin(t).map_or(t, |p| &t[..t.len() - p.len() - 1]);
        if secret.len() < 8
            || secret.len() > 60
            || !secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            bail!("ros.cluster.token: expected 8-60 letters, digits, '-' or '_' (optionally followed by .<ca-sha256>)");
        }
        return Ok(t.to_string());
    }
    let path = token_path(paths);
    if let Ok(t) = std::fs::read_to_string(&path) {
        let t = t.trim();
        if !t.is_empty() {
            return Ok(t.to_string());
        }
    }
    let t = auth::random_token(40);
    write_private(&path, &t)?;
    Ok(t)
}

/// Create the admin account at first start: with `given` (cloud-config
/// `ros.cluster.admin_password`, hashed by the store; never written in
/// clear) or a random password, which is logged once and kept in the
/// state dir for `ros cluster admin-password`.
pub fn first_admin(paths: &Paths, store: &dyn Store, given: Option<&str>) -> Result<()> {
    let generated = access::ensure_admin(store, given)
        .map_err(|e| anyhow::anyhow!("cannot create the admin account: {}", e.message))?;
    if let Some(pw) = generated {
        write_private(&admin_path(paths), &pw)?;
        tracing::warn!(
            user = access::ADMIN_USER,
            password = %pw,
            "cluster admin account created; the password is shown once here and by `ros cluster admin-password` on this node"
        );
        eprintln!(
            "ros: cluster admin account created: user {} password {pw} (again: `sudo ros cluster admin-password`)",
            access::ADMIN_USER
        );
    }
    Ok(())
}

/// `ros cluster admin-password`: the generated first admin password.
pub fn show_admin_password(paths: &Paths) -> Result<i32> {
    if !nix::unistd::geteuid().is_root() {
        bail!("ros cluster admin-password: run as root (sudo ros cluster admin-password)");
    }
    let path = admin_path(paths);
    match std::fs::read_to_string(&path) {
        Ok(pw) => {
            println!("{}", pw.trim());
            Ok(0)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "no generated admin password at {}: the admin password came from ros.cluster.admin_password, or this node runs no cluster server",
            path.display()
        ),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_and_password_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path());
        let t = join_token(&paths, None).unwrap();
        assert_eq!(join_token(&paths, None).unwrap(), t, "kept across starts");
        let mode = std::fs::metadata(token_path(&paths))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            join_token(&paths, Some("given-token-1")).unwrap(),
            "given-token-1"
        );
        assert!(join_token(&paths, Some("short")).is_err());
        assert!(join_token(&paths, Some("bad token with spaces")).is_err());

        let store = crate::cluster::store::SqliteStore::open(&dir.path().join("db")).unwrap();
        first_admin(&paths, &store, None).unwrap();
        let pw = std::fs::read_to_string(admin_path(&paths)).unwrap();
        assert_eq!(pw.len(), 24);
        let mode = std::fs::metadata(admin_path(&paths))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let cfg = access::LocalAuth::from_store(&store).unwrap();
        assert!(cfg.enabled && auth::verify(&pw, &cfg.password_hash));
        // A second start keeps the account.
        first_admin(&paths, &store, Some("other-password")).unwrap();
        let again = access::LocalAuth::from_store(&store).unwrap();
        assert_eq!(again.password_hash, cfg.password_hash);

        let dir2 = tempfile::tempdir().unwrap();
        let paths2 = Paths::new(dir2.path());
        let store2 = crate::cluster::store::SqliteStore::open(&dir2.path().join("db")).unwrap();
        first_admin(&paths2, &store2, Some("from-cloud-config")).unwrap();
        assert!(
            !admin_path(&paths2).exists(),
            "a given password is not written"
        );
        let c2 = access::LocalAuth::from_store(&store2).unwrap();
        assert!(auth::verify("from-cloud-config", &c2.password_hash));
        assert!(!c2.password_hash.contains("from-cloud-config"));
    }
}
