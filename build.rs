//! Vendors the web UI's terminal (xterm.js and its fit addon) from the npm
//! registry at build time into `OUT_DIR`, where `src/cluster/ui` embeds
//! it: nothing is fetched from a CDN at run time, and nothing third-party
//! is committed. `npm install` runs once per target directory (then from
//! npm's cache); `ROS_UI_VENDOR=<dir>` points at a `node_modules` already
//! holding the packages (an offline build).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The exact packages (their licenses: MIT).
const PACKAGES: &[&str] = &["@xterm/xterm@6.0.0", "@xterm/addon-fit@0.11.0"];

/// `(file in node_modules, name in OUT_DIR)`.
const FILES: &[(&str, &str)] = &[
    ("@xterm/xterm/lib/xterm.mjs", "xterm.mjs"),
    ("@xterm/xterm/css/xterm.css", "xterm.css"),
    ("@xterm/addon-fit/lib/addon-fit.mjs", "addon-fit.mjs"),
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=ROS_UI_VENDOR");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let modules = match std::env::var("ROS_UI_VENDOR") {
        Ok(d) => PathBuf::from(d),
        Err(_) => install(&out.join("npm")),
    };
    for (from, to) in FILES {
        let src = modules.join(from);
        let text = std::fs::read_to_string(&src).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (the web UI's terminal comes from npm: install npm \
                 (build/deps.sh) or set ROS_UI_VENDOR to a node_modules holding {})",
                src.display(),
                PACKAGES.join(" ")
            )
        });
        // The source maps are not shipped: drop the comment naming them.
        let text: String = text
            .lines()
            .filter(|l| !l.starts_with("//# sourceMappingURL="))
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(out.join(to), text).expect("write to OUT_DIR");
    }
}

/// `npm install` the packages under `dir` (once); its `node_modules`.
fn install(dir: &Path) -> PathBuf {
    let modules = dir.join("node_modules");
    if FILES.iter().all(|(f, _)| modules.join(f).exists()) {
        return modules;
    }
    std::fs::create_dir_all(dir).expect("create OUT_DIR/npm");
    std::fs::write(dir.join("package.json"), "{\"private\":true}\n").expect("write package.json");
    let st = Command::new("npm")
        .args([
            "install",
            "--no-audit",
            "--no-fund",
            "--no-save",
            "--prefer-offline",
        ])
        .args(PACKAGES)
        .current_dir(dir)
        .status();
    match st {
        Ok(s) if s.success() => modules,
        Ok(s) => panic!(
            "npm install {} failed ({s}): the web UI's terminal comes from the npm registry \
             (or set ROS_UI_VENDOR to a node_modules holding it)",
            PACKAGES.join(" ")
        ),
        Err(e) => panic!(
            "cannot run npm ({e}): build/deps.sh installs it; or set ROS_UI_VENDOR to a \
             node_modules holding {}",
            PACKAGES.join(" ")
        ),
    }
}
