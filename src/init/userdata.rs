//! Datasources at boot: mount the config drives, fetch user-data with
//! `config::datasource`, and save it as a cloud-config.d layer — only when
//! it validates, so a bad user-data leaves the last good one in place.

use std::path::Path;

use crate::config::datasource::{decode_user_data, fetch, Datasource, HttpPolicy, UserData};
use crate::config::disk::write_atomic;
use crate::config::{cmdline::Cmdline, validate, Problem};
use crate::paths::{Paths, CIDATA_LABEL, CONFIG_DRIVE_LABEL};
use crate::sys::{MountArgs, MsFlags, Syscall};

use super::{say, state};

/// File name of the saved user-data layer (after the metadata: it wins).
pub const BOOT_LAYER: &str = "20-user-data.yml";
/// File name of the saved metadata layer (hostname, keys).
pub const META_LAYER: &str = "10-meta-data.yml";

/// What happened to the user-data.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// No datasource had anything.
    Nothing,
    /// Saved from the named datasource.
    Saved(String),
    /// The user-data did not validate; the last good layer is kept.
    Invalid(String, Vec<String>),
    /// A `#!` script, kept for cloud-init-execute.
    Script(String),
}

/// Mount the `cidata` and `config-2` drives (read-only) where the
/// datasources look.
pub fn mount_drives(sys: &dyn Syscall, paths: &Paths) {
    for (label, dir) in [
        (CIDATA_LABEL, paths.cidata_mount()),
        (CONFIG_DRIVE_LABEL, paths.config_drive_mount()),
    ] {
        let Some((dev, probed)) = state::find_label(label) else {
            continue;
        };
        let _ = sys.mkdir(&dir, 0o755);
        let dev = dev.display().to_string();
        match sys.mount(&MountArgs::new(
            Some(&dev),
            dir.clone(),
            Some(probed.fstype),
            MsFlags::MS_RDONLY,
            None,
        )) {
            Ok(()) => say(&format!(
                "datasource: {label} drive {dev} on {}",
                dir.display()
            )),
            Err(e) => say(&format!("datasource: cannot mount {dev}: {e}")),
        }
    }
}

/// Errors of a user-data document: problems other than unknown keys.
pub fn errors(problems: &[Problem]) -> Vec<String> {
    problems
        .iter()
        .filter(|p| !p.unknown_key)
        .map(|p| p.to_string())
        .collect()
}

/// YAML for the metadata layer (JSON strings are valid YAML scalars).
pub fn metadata_yaml(hostname: Option<&str>, keys: &[String]) -> String {
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let mut out = String::from("#cloud-config\n");
    if let Some(h) = hostname {
        out.push_str(&format!("hostname: {}\n", q(h)));
    }
    if !keys.is_empty() {
        out.push_str("ssh_authorized_keys:\n");
        for k in keys {
            out.push_str(&format!("  - {}\n", q(k)));
        }
    }
    out
}

/// Try the datasources in order; the first with data wins.
pub fn save(paths: &Paths, specs: &[String], cmdline: &Cmdline) -> Outcome {
    let dir = paths.cloud_config_d();
    let http = HttpPolicy {
        attempts: 3,
        ..HttpPolicy::default()
    };
    for spec in specs {
        let ds = match Datasource::parse(spec, paths) {
            Ok(d) => d,
            Err(e) => {
                say(&format!("datasource {spec}: {e}"));
                continue;
            }
        };
        let fetched = match fetch(&ds, cmdline, http) {
            Ok(Some(f)) => f,
            Ok(None) => continue,
            Err(e) => {
                say(&format!("datasource {spec}: {e}"));
                continue;
            }
        };
        if fetched.hostname.is_some() || !fetched.ssh_keys.is_empty() {
            let yaml = metadata_yaml(fetched.hostname.as_deref(), &fetched.ssh_keys);
            let _ = write_atomic(&dir.join(META_LAYER), yaml.as_bytes(), 0o600);
        }
        return match decode_user_data(spec, &fetched.user_data) {
            Ok(UserData::Empty) => Outcome::Saved(spec.clone()),
            Ok(UserData::Script(s)) => {
                let _ = write_atomic(&paths.user_script(), &s, 0o700);
                Outcome::Script(spec.clone())
            }
            Ok(UserData::CloudConfig(tree)) => {
                let errs = errors(&validate(&tree).1);
                if !errs.is_empty() {
                    return Outcome::Invalid(spec.clone(), errs);
                }
                match write_atomic(&dir.join(BOOT_LAYER), &fetched.user_data, 0o600) {
                    Ok(()) => Outcome::Saved(spec.clone()),
                    Err(e) => Outcome::Invalid(spec.clone(), vec![e.to_string()]),
                }
            }
            Err(p) => Outcome::Invalid(spec.clone(), vec![p.to_string()]),
        };
    }
    Outcome::Nothing
}

/// Keep a copy of the merged config that validated (`last-good.yml`).
pub fn keep_last_good(path: &Path, yaml: &str) {
    let _ = write_atomic(path, yaml.as_bytes(), 0o600);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::cmdline;

    #[test]
    fn valid_user_data_is_saved_and_invalid_keeps_the_last_good() {
        let root = tempfile::tempdir().unwrap();
        let paths = Paths::new(root.path());
        let seed = root.path().join("seed");
        std::fs::create_dir_all(&seed).unwrap();
        std::fs::write(seed.join("user-data"), "#cloud-config\nhostname: one\n").unwrap();
        let specs = vec![format!("file:/seed/user-data")];
        let cl = cmdline::parse("cmdline", "");
        assert_eq!(
            save(&paths, &specs, &cl),
            Outcome::Saved("file:/seed/user-data".into())
        );
        let saved = paths.cloud_config_d().join(BOOT_LAYER);
        assert!(std::fs::read_to_string(&saved).unwrap().contains("one"));

        std::fs::write(seed.join("user-data"), "#cloud-config\nhostname: [1, 2]\n").unwrap();
        match save(&paths, &specs, &cl) {
            Outcome::Invalid(_, errs) => assert!(errs[0].contains("hostname"), "{errs:?}"),
            o => panic!("{o:?}"),
        }
        // the last good layer is untouched
        assert!(std::fs::read_to_string(&saved).unwrap().contains("one"));
        assert_eq!(save(&paths, &[], &cl), Outcome::Nothing);
    }

    #[test]
    fn metadata_layer_quotes() {
        let y = metadata_yaml(Some("h: x"), &["ssh-ed25519 AAA a@b".into()]);
        assert!(y.contains("hostname: \"h: x\""));
        assert!(y.contains("- \"ssh-ed25519 AAA a@b\""));
    }
}
