//! Datasources: where user-data comes from, and what it is.
//!
//! A datasource spec is `name[:arg]`: `configdrive[:DIR]` (OpenStack
//! `config-2`: `openstack/latest/user_data` + `meta_data.json`),
//! `cidata[:DIR]` (NoCloud: `user-data` + `meta-data`), `file:PATH`,
//! `url:URL` (HTTP GET with retries and a timeout) and `cmdline`
//! (`cloud-config-url=URL`, or inline `cloud-config=BASE64`).
//! [`decode_user_data`] is pure: gzip is unpacked, `#cloud-config` is YAML,
//! `#!` is a script kept for later execution.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;

use super::cmdline::Cmdline;
use super::node::{parse_document, Node};
use super::problem::Problem;
use crate::paths::Paths;

/// Largest user-data accepted (after gunzip), in bytes.
pub const MAX_USER_DATA: usize = 4 * 1024 * 1024;

/// A datasource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Datasource {
    /// A file on the node.
    File(PathBuf),
    /// A URL fetched over HTTP(S).
    Url(String),
    /// The kernel command line.
    Cmdline,
    /// A mounted OpenStack config drive.
    ConfigDrive(PathBuf),
    /// A mounted NoCloud seed.
    Cidata(PathBuf),
}

/// Errors of datasources.
#[derive(Debug, thiserror::Error)]
pub enum DatasourceError {
    /// A spec that names no known datasource.
    #[error(
        "unknown datasource {0:?} (expected configdrive, cidata, file:PATH, url:URL or cmdline)"
    )]
    UnknownSpec(String),
    /// Reading a file failed.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Fetching a URL failed after every retry.
    #[error("cannot fetch {url} after {attempts} attempts: {reason}")]
    Fetch {
        /// The URL.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        reason: String,
    },
    /// The user-data could not be decoded.
    #[error("{0}")]
    Decode(String),
}

impl Datasource {
    /// Parse a spec such as `configdrive:/media/config-2` or `url:http://…`.
    /// Relative default directories are resolved below `paths`.
    pub fn parse(spec: &str, paths: &Paths) -> Result<Datasource, DatasourceError> {
        let (name, arg) = match spec.split_once(':') {
            Some((n, a)) => (n, Some(a)),
            None => (spec, None),
        };
        let dir = |default: PathBuf| match arg {
            Some(a) if !a.is_empty() => paths.at(a),
            _ => default,
        };
        match (name, arg) {
            ("configdrive", _) => Ok(Datasource::ConfigDrive(dir(paths.config_drive_mount()))),
            ("cidata" | "nocloud", _) => Ok(Datasource::Cidata(dir(paths.cidata_mount()))),
            ("file", Some(p)) if !p.is_empty() => Ok(Datasource::File(paths.at(p))),
            ("url", Some(u)) if !u.is_empty() => Ok(Datasource::Url(u.to_string())),
            ("cmdline", None) => Ok(Datasource::Cmdline),
            _ => Err(DatasourceError::UnknownSpec(spec.to_string())),
        }
    }
}

/// What a datasource produced.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Fetched {
    /// The user-data bytes (possibly gzip).
    pub user_data: Vec<u8>,
    /// A hostname from metadata.
    pub hostname: Option<String>,
    /// SSH keys from metadata.
    pub ssh_keys: Vec<String>,
}

/// User-data, decoded.
#[derive(Clone, Debug, PartialEq)]
pub enum UserData {
    /// Nothing.
    Empty,
    /// A `#cloud-config` document.
    CloudConfig(Node),
    /// A `#!` script, kept for later execution.
    Script(Vec<u8>),
}

/// Decode user-data: gunzip when gzip, then `#cloud-config` (YAML), `#!`
/// (script) or empty. Anything else is an error that says what was found.
pub fn decode_user_data(source: &str, bytes: &[u8]) -> Result<UserData, Problem> {
    let at = || super::node::Span::synthetic(source);
    let data = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        let mut d = flate2::read::GzDecoder::new(bytes).take(MAX_USER_DATA as u64 + 1);
        d.read_to_end(&mut out).map_err(|e| {
            Problem::new(
                at(),
                Vec::new(),
                format!("user-data is gzip but does not unpack: {e}"),
            )
        })?;
        if out.len() > MAX_USER_DATA {
            return Err(Problem::new(
                at(),
                Vec::new(),
                format!("user-data unpacks to more than {MAX_USER_DATA} bytes"),
            ));
        }
        out
    } else {
        bytes.to_vec()
    };
    let trimmed = trim_start(&data);
    if trimmed.is_empty() {
        return Ok(UserData::Empty);
    }
    if trimmed.starts_with(b"#cloud-config") {
        return parse_document(source, &data).map(UserData::CloudConfig);
    }
    if trimmed.starts_with(b"#!") {
        return Ok(UserData::Script(data));
    }
    let first: String = String::from_utf8_lossy(trimmed)
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(40)
        .collect();
    Err(Problem::new(
        at(),
        Vec::new(),
        format!("user-data must start with #cloud-config or #!, found {first:?}"),
    ))
}

fn trim_start(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|c| c.is_ascii_whitespace()).count();
    &b[n..]
}

fn read_file(path: &Path) -> Result<Option<Vec<u8>>, DatasourceError> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(DatasourceError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// How to fetch URLs.
#[derive(Clone, Copy, Debug)]
pub struct HttpPolicy {
    /// Attempts before giving up.
    pub attempts: u32,
    /// Timeout of one attempt.
    pub timeout: Duration,
    /// First wait between attempts (doubles each time).
    pub backoff: Duration,
}

impl Default for HttpPolicy {
    fn default() -> Self {
        HttpPolicy {
            attempts: 6,
            timeout: Duration::from_secs(10),
            backoff: Duration::from_millis(500),
        }
    }
}

/// HTTP GET with retries; 4xx other than 408/429 fail at once.
pub fn fetch_url(url: &str, policy: HttpPolicy) -> Result<Vec<u8>, DatasourceError> {
    let agent = ureq::AgentBuilder::new().timeout(policy.timeout).build();
    let mut wait = policy.backoff;
    let mut last = String::new();
    let attempts = policy.attempts.max(1);
    for attempt in 1..=attempts {
        match agent.get(url).call() {
            Ok(resp) => {
                let mut body = Vec::new();
                match resp
                    .into_reader()
                    .take(MAX_USER_DATA as u64 + 1)
                    .read_to_end(&mut body)
                {
                    Ok(_) if body.len() > MAX_USER_DATA => {
                        return Err(DatasourceError::Fetch {
                            url: url.to_string(),
                            attempts: attempt,
                            reason: format!("body larger than {MAX_USER_DATA} bytes"),
                        })
                    }
                    Ok(_) => return Ok(body),
                    Err(e) => last = e.to_string(),
                }
            }
            Err(ureq::Error::Status(code, _))
                if (400..500).contains(&code) && code != 408 && code != 429 =>
            {
                return Err(DatasourceError::Fetch {
                    url: url.to_string(),
                    attempts: attempt,
                    reason: format!("HTTP {code}"),
                })
            }
            Err(e) => last = e.to_string(),
        }
        if attempt < attempts {
            std::thread::sleep(wait);
            wait = wait.saturating_mul(2).min(Duration::from_secs(30));
        }
    }
    Err(DatasourceError::Fetch {
        url: url.to_string(),
        attempts,
        reason: last,
    })
}

/// Read one datasource. `Ok(None)` means it is not present (no drive, no
/// `cloud-config-url`); errors mean it is present but broken.
pub fn fetch(
    ds: &Datasource,
    cmdline: &Cmdline,
    http: HttpPolicy,
) -> Result<Option<Fetched>, DatasourceError> {
    match ds {
        Datasource::File(p) => Ok(read_file(p)?.map(|user_data| Fetched {
            user_data,
            ..Default::default()
        })),
        Datasource::Url(u) => Ok(Some(Fetched {
            user_data: fetch_url(u, http)?,
            ..Default::default()
        })),
        Datasource::Cmdline => {
            if let Some(url) = cmdline.value("cloud-config-url") {
                return fetch(&Datasource::Url(url.to_string()), cmdline, http);
            }
            match cmdline.value("cloud-config") {
                Some(b64) => base64::engine::general_purpose::STANDARD
                    .decode(b64.trim_matches('"'))
                    .map(|user_data| {
                        Some(Fetched {
                            user_data,
                            ..Default::default()
                        })
                    })
                    .map_err(|e| {
                        DatasourceError::Decode(format!(
                            "cloud-config= on the kernel command line is not base64: {e}"
                        ))
                    }),
                None => Ok(None),
            }
        }
        Datasource::ConfigDrive(dir) => {
            let user = read_file(&dir.join("openstack/latest/user_data"))?;
            let meta = read_file(&dir.join("openstack/latest/meta_data.json"))?;
            if user.is_none() && meta.is_none() {
                return Ok(None);
            }
            let mut f = Fetched {
                user_data: user.unwrap_or_default(),
                ..Default::default()
            };
            if let Some(m) = meta {
                let v: serde_json::Value = serde_json::from_slice(&m).map_err(|e| {
                    DatasourceError::Decode(format!(
                        "{}: bad meta_data.json: {e}",
                        dir.join("openstack/latest/meta_data.json").display()
                    ))
                })?;
                f.hostname = v["hostname"].as_str().map(String::from);
                if let Some(keys) = v["public_keys"].as_object() {
                    f.ssh_keys = keys
                        .values()
                        .filter_map(|k| k.as_str())
                        .map(String::from)
                        .collect();
                }
            }
            Ok(Some(f))
        }
        Datasource::Cidata(dir) => {
            let user = read_file(&dir.join("user-data"))?;
            let meta = read_file(&dir.join("meta-data"))?;
            if user.is_none() && meta.is_none() {
                return Ok(None);
            }
            let mut f = Fetched {
                user_data: user.unwrap_or_default(),
                ..Default::default()
            };
            if let Some(m) = meta {
                let src = dir.join("meta-data").display().to_string();
                let tree =
                    parse_document(&src, &m).map_err(|p| DatasourceError::Decode(p.to_string()))?;
                f.hostname = tree
                    .get("local-hostname")
                    .or_else(|| tree.get("hostname"))
                    .and_then(|n| n.as_str())
                    .map(String::from);
                if let Some(super::node::Value::Seq(keys)) =
                    tree.get("public-keys").map(|n| &n.value)
                {
                    f.ssh_keys = keys
                        .iter()
                        .filter_map(|k| k.as_str())
                        .map(String::from)
                        .collect();
                }
            }
            Ok(Some(f))
        }
    }
}
