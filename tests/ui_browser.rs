//! The web UI end to end: headless Chromium (Debian's `chromium`) driven
//! by `playwright-core` (npm, installed into the target directory when
//! missing) through `tests/ui/e2e.mjs`, against a real `ros cluster
//! server` and real agents with their own dockerd in network namespaces
//! (tests/harness). Two hosts join first; the third joins with the command
//! the Add Host page shows, and its card must appear without a reload.
//! Then: a broken compose shows its positioned error, a stack deploys from
//! pasted compose text, +1 scales it, upgrade → finish and upgrade →
//! rollback from the buttons, logs follow, a shell runs `hostname` in a
//! container (xterm.js over the exec websocket), an API key is created,
//! phone width, the events view after a server restart, and auth on → the
//! login page → login. The first-page render time (median of 10 loads) is
//! printed with the other figures. Screenshots go to
//! `<target>/ui-screens/`. Needs root (namespaces, dockerd).

mod harness;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use harness::*;

const PLAYWRIGHT: &str = "playwright-core@1.49.1";

/// `<target>/ui-node/node_modules/playwright-core`, installed on first use.
fn playwright(target: &Path) -> PathBuf {
    let dir = target.join("ui-node");
    let module = dir.join("node_modules/playwright-core");
    if !module.join("index.mjs").exists() {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("package.json"), "{\"private\":true}\n").unwrap();
        let st = Command::new("npm")
            .args([
                "install",
                "--no-audit",
                "--no-fund",
                "--no-save",
                PLAYWRIGHT,
            ])
            .current_dir(&dir)
            .status()
            .expect("npm (build/deps.sh installs nodejs and npm)");
        assert!(st.success(), "npm install {PLAYWRIGHT} failed");
    }
    module.join("index.mjs")
}

#[test]
fn ui_in_a_real_browser_against_a_real_cluster() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "ui_browser needs root (network namespaces and dockerd); CI runs as root"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: build/deps.sh installs Debian's chromium"
    );
    let t0 = Instant::now();
    // `<target>/tmp` → `<target>`.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let module = playwright(&target);
    let screens = target.join("ui-screens");
    let _ = std::fs::remove_dir_all(&screens);

    let mut c = setup();
    let token = post(
        &format!("{}/v1/projects/1a5/registrationtokens", c.url),
        serde_json::json!({}),
    );
    let reg = token["registrationUrl"].as_str().unwrap().to_string();
    for i in 0..2 {
        let a = start_agent(&c, i, &reg);
        c.hosts[i].agent = Some(a);
    }
    let url = c.url.clone();
    wait_for("2 active hosts", 90, || {
        let v = get(&format!("{url}/v1/projects/1a5/hosts?agentState=active"));
        (v["data"].as_array()?.len() == 2).then_some(())
    });
    let rss_before = server_rss(&c);

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui/e2e.mjs");
    let mut node = Command::new("node")
        .arg(&script)
        .env("ROS_URL", &url)
        // Access control is on from the first start: the rig's admin.
        .env("ROS_UI_USER", &admin().0)
        .env("ROS_UI_PASSWORD", &admin().1)
        .env("SCREENS", &screens)
        .env("PLAYWRIGHT", &module)
        .env("CHROMIUM", &chromium)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node (build/deps.sh installs nodejs)");
    let mut stdin = node.stdin.take().unwrap();
    let out = BufReader::new(node.stdout.take().unwrap());
    let mut verdict = None;
    for line in out.lines() {
        let line = line.unwrap();
        eprintln!("[e2e] {line}");
        if let Some(cmd) = line.strip_prefix("RUN_AGENT ") {
            // The command the page showed, run as is on node3: the script
            // fetches ros from the server and starts the agent.
            join_by_script(&c, 2, cmd.trim());
            writeln!(stdin, "ok").unwrap();
        } else if line == "RESTART_SERVER" {
            // The event history must outlive the server process.
            restart_server(&mut c);
            writeln!(stdin, "ok").unwrap();
        } else if line == "PASS" || line.starts_with("FAIL") {
            verdict = Some(line);
        }
    }
    let st = node.wait().unwrap();
    eprintln!(
        "server RSS: {rss_before} kB before the browser, {} kB after",
        server_rss(&c)
    );
    eprintln!(
        "ui_browser: {:.0} s; screenshots in {}",
        t0.elapsed().as_secs_f64(),
        screens.display()
    );
    assert_eq!(verdict.as_deref(), Some("PASS"), "e2e: {verdict:?}");
    assert!(st.success());
}

fn server_rss(c: &Cluster) -> u64 {
    let Some(pid) = c.server.as_ref().map(|s| s.id()) else {
        return 0;
    };
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
