//! Cross-module tests of the config model: validation positions, layer
//! order, bad input, datasources, RancherOS compatibility.

use std::io::Write;

use super::datasource::{decode_user_data, fetch, Datasource, HttpPolicy, UserData};
use super::node::{parse_document, to_yaml};
use super::types::{ClusterRole, Encoding};
use super::*;
use crate::paths::Paths;

fn fixture(name: &str) -> (String, Vec<u8>) {
    let path = format!("{}/src/config/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap();
    (name.to_string(), bytes)
}

fn problems_of(name: &str, text: &str) -> Vec<String> {
    validate_document(name, text.as_bytes())
        .iter()
        .map(|p| p.to_string())
        .collect()
}

#[test]
fn shipped_os_config_validates_cleanly() {
    let problems = validate_document("os-config.yml", OS_CONFIG_YML.as_bytes());
    assert!(problems.is_empty(), "{problems:#?}");
    let tree = parse_document("os-config.yml", OS_CONFIG_YML.as_bytes()).unwrap();
    let (cfg, _) = validate(&tree);
    for svc in [
        "udev-cold",
        "udev",
        "network",
        "ntp",
        "syslog",
        "cloud-init-execute",
        "console",
        "docker",
    ] {
        assert!(cfg.ros.services.contains_key(svc), "missing service {svc}");
    }
    assert!(cfg.ros.services["udev-cold"].is_oneshot());
    // the way to `login:` first: network, cloud-init, then the console
    // beside the user engine; coldplug once the console runs (udevd waits
    // for it); the rest once the console runs and the user engine answers
    let after = |s: &str| cfg.ros.services[s].after();
    assert!(after("network").is_empty());
    assert_eq!(after("cloud-init-execute"), vec!["network"]);
    assert_eq!(after("console"), vec!["cloud-init-execute"]);
    assert_eq!(after("docker"), vec!["cloud-init-execute"]);
    assert_eq!(after("udev-cold"), vec!["console"]);
    assert_eq!(after("udev"), vec!["network", "udev-cold"]);
    assert_eq!(after("ntp"), vec!["console", "docker"]);
    assert_eq!(after("syslog"), vec!["console", "docker"]);
    assert_eq!(
        cfg.ros.services["docker"].ready_socket(),
        Some("/var/run/docker.sock")
    );
    assert_eq!(cfg.ros.system_docker.bridge.as_deref(), Some("docker-sys"));
}

#[test]
fn validation_messages_name_file_line_column_and_key() {
    let (name, bytes) = fixture("bad-positions.yml");
    let got: Vec<String> = validate_document(&name, &bytes)
        .iter()
        .map(|p| p.to_string())
        .collect();
    let want = [
        "bad-positions.yml:4:10: ros.debug: expected a boolean (true or false), found a string \"maybe\"",
        "bad-positions.yml:5:3: ros.netwrk: unknown key (did you mean network?)",
        "bad-positions.yml:11:14: ros.network.interfaces.eth0.mtu: expected an integer, found a string \"big\"",
        "bad-positions.yml:15:19: ros.services.web.privileged: expected a boolean (true or false), found a string \"sometimes\"",
        "bad-positions.yml:16:7: ros.services.web.bogus: unknown key",
        "bad-positions.yml:18:11: ros.cluster.role: expected one of server, agent, both, found \"boss\"",
        "bad-positions.yml:21:15: write_files[0].encoding: expected one of b64, base64, gzip, gz, gz+b64, gzip+base64, found \"rot13\"",
    ];
    assert_eq!(got, want);
}

#[test]
fn valid_parts_survive_invalid_neighbours() {
    let tree = parse_document(
        "x.yml",
        b"hostname: h\nros:\n  debug: maybe\n  console: alpine\n",
    )
    .unwrap();
    let (cfg, problems) = validate(&tree);
    assert_eq!(problems.len(), 1);
    assert_eq!(cfg.hostname.as_deref(), Some("h"));
    assert_eq!(cfg.ros.console.as_deref(), Some("alpine"));
    assert!(!cfg.ros.debug);
}

#[test]
fn bad_input_gets_a_positioned_error_never_a_panic() {
    let deep = "a:\n".to_string()
        + &(1..100)
            .map(|i| format!("{}a:\n", "  ".repeat(i)))
            .collect::<String>();
    let bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n";
    let huge = format!(
        "hostname: {}\n",
        "x".repeat(super::node::MAX_DOCUMENT_BYTES)
    );
    let rows: Vec<(&str, Vec<u8>, &str)> = vec![
        ("malformed", b"ros: {debug: true\n".to_vec(), "m.yml:2:1:"),
        (
            "bad indent",
            b"ros:\n  debug: true\n console: x\n".to_vec(),
            "m.yml:3:",
        ),
        ("tab indent", b"ros:\n\tdebug: true\n".to_vec(), "tabs"),
        (
            "invalid utf8",
            b"hostname: ok\nros: \xff\xfe\n".to_vec(),
            "m.yml:2:6: invalid UTF-8",
        ),
        (
            "two documents",
            b"a: 1\n---\nb: 2\n".to_vec(),
            "more than one YAML document",
        ),
        ("list at top", b"- a\n- b\n".to_vec(), "must be a map"),
        (
            "duplicate key",
            b"hostname: a\nhostname: b\n".to_vec(),
            "m.yml:2:1: hostname: duplicate key (first defined at line 1)",
        ),
        ("deep", deep.into_bytes(), "nesting deeper than"),
        ("alias bomb", bomb.as_bytes().to_vec(), "more than"),
        ("huge", huge.into_bytes(), "bytes, more than"),
        ("unknown alias", b"a: *nope\n".to_vec(), "m.yml:1:"),
        ("map key", b"? [a, b]\n: c\n".to_vec(), "must be a scalar"),
    ];
    for (what, bytes, want) in rows {
        let problems = validate_document("m.yml", &bytes);
        assert!(!problems.is_empty(), "{what}: no problem reported");
        let msg = problems[0].to_string();
        assert!(msg.contains(want), "{what}: {msg:?} lacks {want:?}");
    }
}

#[test]
fn crlf_and_bom_and_empty_are_fine() {
    assert!(problems_of(
        "c.yml",
        "#cloud-config\r\nhostname: a\r\nros:\r\n  debug: true\r\n"
    )
    .is_empty());
    assert!(problems_of("c.yml", "\u{feff}hostname: a\n").is_empty());
    assert!(problems_of("c.yml", "").is_empty());
    assert!(problems_of("c.yml", "#cloud-config\n# only comments\n").is_empty());
    let tree = parse_document("c.yml", b"hostname: a\r\n").unwrap();
    assert_eq!(validate(&tree).0.hostname.as_deref(), Some("a"));
}

#[test]
fn rancheros_configs_parse_without_loss() {
    for name in ["rancheros-network.yml", "rancheros-services.yml"] {
        let (n, bytes) = fixture(name);
        let problems = validate_document(&n, &bytes);
        assert!(problems.is_empty(), "{name}: {problems:#?}");
    }
    let (n, bytes) = fixture("rancheros-network.yml");
    let (cfg, _) = validate(&parse_document(&n, &bytes).unwrap());
    let net = &cfg.ros.network;
    assert_eq!(net.dns.nameservers.0, ["10.0.0.2", "10.0.0.3"]);
    assert_eq!(net.interfaces.len(), 8);
    assert_eq!(
        network::parse_vlans(&net.interfaces["eth1"].vlans.as_ref().unwrap().0)
            .unwrap()
            .len(),
        2
    );
    assert_eq!(net.interfaces["bond0"].bond_opts.0["mode"], "1");
    assert_eq!(net.interfaces["bond0"].mtu, Some(9000));
    assert_eq!(net.interfaces["eth6"].bond.as_deref(), Some("bond0"));
    assert_eq!(
        net.interfaces["eth1.100"].bridge,
        Some(values::BoolOrName::Name("br0".into()))
    );
    assert_eq!(cfg.ssh_authorized_keys.len(), 1);

    let (n, bytes) = fixture("rancheros-services.yml");
    let (cfg, _) = validate(&parse_document(&n, &bytes).unwrap());
    let nginx = &cfg.ros.services["nginx"];
    assert_eq!(nginx.net.as_deref(), Some("host"));
    assert_eq!(nginx.ports.len(), 2);
    assert_eq!(nginx.environment.0["FOO"], "bar");
    assert_eq!(nginx.after(), vec!["console", "network"]);
    assert_eq!(nginx.ulimits["nofile"].hard, 4096);
    assert!(cfg.ros.services["backup"].is_oneshot());
    assert!(cfg.ros.services_include["kernel-headers"]);
    assert_eq!(cfg.ros.sysctl["net.ipv4.ip_forward"].0, "1");
    assert_eq!(cfg.ros.state.autoformat.0, ["/dev/sda", "/dev/vda"]);
    assert_eq!(cfg.runcmd.len(), 2);
    assert_eq!(cfg.write_files[1].encoding, Encoding::Base64);
    assert_eq!(cfg.write_files[1].decoded().unwrap(), b"hello world\n");
    assert_eq!(cfg.write_files[2].decoded().unwrap(), b"hello");
    assert_eq!(cfg.write_files[0].mode().unwrap(), 0o644);
    // Nothing is dropped: the tree round-trips through YAML unchanged.
    let tree = parse_document(&n, &bytes).unwrap();
    let again = parse_document("again", to_yaml(&tree).as_bytes()).unwrap();
    assert_eq!(super::node::to_json(&tree), super::node::to_json(&again));
}

fn write(path: &std::path::Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn layers_merge_in_order_later_wins() {
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::new(dir.path());
    write(
        &paths.os_config(),
        "hostname: default\nros:\n  console: default\n  debug: false\n  modules: [a]\n",
    );
    write(
        &paths.cloud_config_d().join("10-boot.yml"),
        "#cloud-config\nhostname: from-userdata\nros:\n  modules: [b, c]\n",
    );
    write(
        &paths.cloud_config_d().join("20-more.yml"),
        "rancher:\n  console: alpine\n",
    );
    write(
        &paths.cloud_config_d().join(".hidden.yml"),
        "hostname: hidden\n",
    );
    write(
        &paths.cloud_config(),
        "hostname: local\nros:\n  debug: true\n",
    );
    write(
        &paths.cmdline(),
        "console=ttyS0 ros.debug=false rancher.modules=[z]\n",
    );
    let layers = disk::load(&paths);
    assert!(layers.problems.is_empty(), "{:?}", layers.problems);
    let (tree, cfg, problems) = layers.resolve();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(cfg.hostname.as_deref(), Some("local"));
    assert_eq!(cfg.ros.console.as_deref(), Some("alpine"));
    assert!(!cfg.ros.debug, "cmdline wins over cloud-config.yml");
    assert_eq!(cfg.ros.modules, ["z"]);
    let debug = path::get(&tree, "ros.debug").unwrap().unwrap();
    assert!(
        debug.span.source.ends_with("proc/cmdline"),
        "{}",
        debug.span
    );

    // Without the defaults (export without --full).
    let user = layers.merged(false);
    assert!(path::get(&user, "ros.modules").unwrap().is_some());
    assert!(user.get("ros").unwrap().get("console").is_some());

    // A broken layer is reported and skipped; the rest still apply.
    write(&paths.cloud_config_d().join("30-broken.yml"), "ros: [\n");
    let layers = disk::load(&paths);
    assert_eq!(layers.problems.len(), 1);
    assert!(layers.problems[0].to_string().contains("30-broken.yml:2:1"));
    assert_eq!(layers.resolve().1.hostname.as_deref(), Some("local"));
}

#[test]
fn user_data_formats() {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"#cloud-config\nhostname: zipped\n").unwrap();
    let gz = gz.finish().unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("yaml", b"#cloud-config\nhostname: a\n".to_vec(), "config"),
        ("gzip", gz, "config"),
        ("script", b"#!/bin/sh\necho hi\n".to_vec(), "script"),
        ("empty", b"\n\n".to_vec(), "empty"),
        ("garbage", b"hello world\n".to_vec(), "error"),
        ("bad gzip", vec![0x1f, 0x8b, 1, 2, 3], "error"),
        ("bad yaml", b"#cloud-config\nros: [\n".to_vec(), "error"),
    ];
    for (what, bytes, want) in cases {
        let got = match decode_user_data("ud", &bytes) {
            Ok(UserData::CloudConfig(_)) => "config",
            Ok(UserData::Script(_)) => "script",
            Ok(UserData::Empty) => "empty",
            Err(_) => "error",
        };
        assert_eq!(got, want, "{what}");
    }
    let Ok(UserData::CloudConfig(t)) = decode_user_data("ud", &{
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(b"#cloud-config\nhostname: zipped\n").unwrap();
        gz.finish().unwrap()
    }) else {
        panic!("gzip user-data not decoded")
    };
    assert_eq!(t.get("hostname").unwrap().as_str(), Some("zipped"));
    let err = decode_user_data("ud", b"hello world\n").unwrap_err();
    assert!(err.to_string().contains("#cloud-config or #!"), "{err}");
}

#[test]
fn datasources_read_their_layouts() {
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::new(dir.path());
    let none = cmdline::parse("c", "");
    let http = HttpPolicy::default();

    // Spec parsing.
    assert_eq!(
        Datasource::parse("configdrive", &paths).unwrap(),
        Datasource::ConfigDrive(paths.config_drive_mount())
    );
    assert_eq!(
        Datasource::parse("file:/etc/x.yml", &paths).unwrap(),
        Datasource::File(paths.at("/etc/x.yml"))
    );
    assert!(Datasource::parse("ec2-ish", &paths).is_err());
    assert!(Datasource::parse("url:", &paths).is_err());

    // Absent sources are None, not errors.
    for spec in ["configdrive", "cidata", "file:/nope", "cmdline"] {
        let ds = Datasource::parse(spec, &paths).unwrap();
        assert_eq!(fetch(&ds, &none, http).unwrap(), None, "{spec}");
    }

    // config-2.
    let cd = paths.config_drive_mount().join("openstack/latest");
    write(&cd.join("user_data"), "#cloud-config\nhostname: from-cd\n");
    write(
        &cd.join("meta_data.json"),
        r#"{"hostname": "meta-host", "public_keys": {"k": "ssh-ed25519 AAAA k"}}"#,
    );
    let f = fetch(
        &Datasource::parse("configdrive", &paths).unwrap(),
        &none,
        http,
    )
    .unwrap()
    .unwrap();
    assert!(f.user_data.starts_with(b"#cloud-config"));
    assert_eq!(f.hostname.as_deref(), Some("meta-host"));
    assert_eq!(f.ssh_keys, ["ssh-ed25519 AAAA k"]);

    // NoCloud cidata.
    write(
        &paths.cidata_mount().join("user-data"),
        "#cloud-config\nhostname: from-cidata\n",
    );
    write(
        &paths.cidata_mount().join("meta-data"),
        "instance-id: i-1\nlocal-hostname: nc-host\n",
    );
    let f = fetch(&Datasource::parse("cidata", &paths).unwrap(), &none, http)
        .unwrap()
        .unwrap();
    assert_eq!(f.hostname.as_deref(), Some("nc-host"));
    assert!(f.user_data.ends_with(b"from-cidata\n"));

    // file:
    write(&paths.at("/etc/ud.yml"), "#!/bin/sh\n");
    let f = fetch(
        &Datasource::parse("file:/etc/ud.yml", &paths).unwrap(),
        &none,
        http,
    )
    .unwrap()
    .unwrap();
    assert_eq!(f.user_data, b"#!/bin/sh\n");

    // cmdline inline (base64).
    let c = cmdline::parse(
        "c",
        "cloud-config=I2Nsb3VkLWNvbmZpZwpob3N0bmFtZTogaW5saW5lCg==",
    );
    let f = fetch(&Datasource::Cmdline, &c, http).unwrap().unwrap();
    assert_eq!(f.user_data, b"#cloud-config\nhostname: inline\n");
    let c = cmdline::parse("c", "cloud-config=!!!");
    assert!(fetch(&Datasource::Cmdline, &c, http).is_err());
}

/// A one-shot HTTP server on loopback: answers `fail_first` requests with
/// 503, then 200 with `body`.
fn http_server(body: &'static str, fail_first: usize) -> String {
    use std::io::{BufRead, BufReader};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for (i, stream) in listener.incoming().enumerate() {
            let Ok(mut s) = stream else { return };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            while r.read_line(&mut line).map(|n| n > 2).unwrap_or(false) {
                line.clear();
            }
            let resp = if i < fail_first {
                "HTTP/1.1 503 Busy\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
            } else {
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            };
            let _ = s.write_all(resp.as_bytes());
            if i >= fail_first {
                return;
            }
        }
    });
    format!("http://{addr}/user-data")
}

#[test]
fn url_datasource_retries_then_succeeds() {
    let url = http_server("#cloud-config\nhostname: web\n", 2);
    let policy = HttpPolicy {
        attempts: 4,
        timeout: std::time::Duration::from_secs(5),
        backoff: std::time::Duration::from_millis(10),
    };
    let c = cmdline::parse("c", &format!("cloud-config-url={url}"));
    let f = fetch(&Datasource::Cmdline, &c, policy).unwrap().unwrap();
    assert_eq!(f.user_data, b"#cloud-config\nhostname: web\n");

    // Nothing listening: fails after every attempt, saying how many.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/x", l.local_addr().unwrap())
    };
    let err = fetch(
        &Datasource::Url(dead),
        &c,
        HttpPolicy {
            attempts: 2,
            ..policy
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("after 2 attempts"), "{err}");
}

#[test]
fn cluster_role_and_aliases() {
    let t = parse_document(
        "c",
        b"ros:\n  cluster:\n    role: agent\n    server_url: http://s:8080\n    token: abc\n",
    )
    .unwrap();
    let (cfg, problems) = validate(&t);
    assert!(problems.is_empty());
    assert_eq!(cfg.ros.cluster.role, Some(ClusterRole::Agent));
}

/// A cheap, deterministic stand-in for the fuzzer in every test run: every
/// fixture, truncated at every byte and with bytes flipped, must not panic.
#[test]
fn mutated_fixtures_never_panic() {
    let mut inputs: Vec<Vec<u8>> = [
        "rancheros-network.yml",
        "rancheros-services.yml",
        "bad-positions.yml",
    ]
    .iter()
    .map(|n| fixture(n).1)
    .collect();
    inputs.push(OS_CONFIG_YML.as_bytes().to_vec());
    let mut seed: u64 = 0x9e3779b97f4a7c15;
    for input in &inputs {
        for cut in (0..input.len()).step_by(7) {
            fuzz_one(&input[..cut]);
        }
        for _ in 0..200 {
            let mut m = input.clone();
            for _ in 0..4 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let i = (seed as usize) % m.len();
                let alphabet = b"{}[]:-,&*!|>'\"\t\r\n #%@`";
                m[i] = alphabet[(seed >> 32) as usize % alphabet.len()];
            }
            fuzz_one(&m);
        }
    }
}
