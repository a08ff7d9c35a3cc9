//! build/prelink.py, the build step that prelinks dockerd and the docker
//! CLI: a PIE compiled here (function-pointer tables, string tables, TLS,
//! libc calls — the relocation kinds Go's PIE binaries carry) runs the
//! same after prelinking, as a position-dependent executable with no
//! relative relocations left; what it does not understand it refuses.

use std::path::{Path, PathBuf};
use std::process::Command;

const PROGRAM: &str = r#"
#include <stdio.h>
#include <string.h>
static const char *names[] = {"alpha", "beta", "gamma"};
static int add(int a, int b) { return a + b; }
static int mul(int a, int b) { return a * b; }
static int (*ops[])(int, int) = {add, mul};
static const char **table[] = {&names[2], &names[0]};
__thread int counter = 5;
int main(int argc, char **argv) {
    int s = 0;
    for (int i = 0; i < 2; i++) s += ops[i](3, 4);
    counter += s;
    printf("%s %s %s %s %d %d %d\n", names[0], names[1], *table[0], *table[1], s, counter, argc);
    fprintf(stderr, "main at %p\n", (void *)main);
    return strlen(argv[0]) > 0 ? 0 : 1;
}
"#;

/// The C compiler the PIE is built with (Rust's linker driver, so present
/// wherever this crate builds); says so when it is missing.
fn have_cc() -> bool {
    let ok = Command::new("cc").arg("--version").output().is_ok();
    if !ok {
        eprintln!("skipped: no C compiler");
    }
    ok
}

fn top() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn compile(dir: &Path, name: &str, flags: &[&str]) -> Option<PathBuf> {
    let src = dir.join("p.c");
    std::fs::write(&src, PROGRAM).unwrap();
    let out = dir.join(name);
    let st = Command::new("cc")
        .args(flags)
        .arg("-O1")
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .status()
        .ok()?;
    st.success().then_some(out)
}

fn prelink(input: &Path, output: &Path) -> std::process::Output {
    Command::new("python3")
        .arg(top().join("build/prelink.py"))
        .arg(input)
        .arg(output)
        .output()
        .expect("python3 runs")
}

fn run(bin: &Path) -> (String, String) {
    let o = Command::new(bin).arg("x").output().unwrap();
    assert!(o.status.success(), "{} failed: {o:?}", bin.display());
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn elf_type(bin: &Path) -> u16 {
    let b = std::fs::read(bin).unwrap();
    u16::from_le_bytes([b[16], b[17]])
}

fn relocation_kinds(bin: &Path) -> String {
    let o = Command::new("readelf")
        .arg("-rW")
        .arg(bin)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn a_prelinked_pie_runs_the_same_at_its_fixed_address() {
    if !have_cc() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // eager binding (as Debian's dockerd: BIND_NOW) and lazy binding
    for (name, flags) in [
        ("now", &["-fPIE", "-pie", "-Wl,-z,now"][..]),
        ("lazy", &["-fPIE", "-pie", "-Wl,-z,lazy"][..]),
    ] {
        let pie = compile(dir.path(), name, flags).expect("cc builds a PIE");
        assert_eq!(elf_type(&pie), 3, "a PIE is ET_DYN");
        assert!(relocation_kinds(&pie).contains("R_X86_64_RELATIVE"));
        let out = dir.path().join(format!("{name}.prelinked"));
        let o = prelink(&pie, &out);
        assert!(o.status.success(), "prelink failed: {o:?}");
        let said = String::from_utf8_lossy(&o.stdout);
        assert!(said.contains("relative relocations applied"), "{said}");
        std::fs::set_permissions(&out, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        assert_eq!(elf_type(&out), 2, "prelinked: ET_EXEC");
        assert!(
            !relocation_kinds(&out).contains("R_X86_64_RELATIVE"),
            "no relative relocation is left for the loader"
        );
        let (a, _) = run(&pie);
        let (b, where_) = run(&out);
        assert_eq!(a, "alpha beta gamma alpha 19 24 2\n");
        assert_eq!(a, b, "{name}: same output after prelinking");
        // at the base it was prelinked for, every run
        let addr = where_.trim().trim_start_matches("main at 0x");
        let addr = u64::from_str_radix(addr, 16).unwrap();
        assert!((0x40_0000..0x100_0000).contains(&addr), "main at {addr:#x}");
        assert_eq!(run(&out).1, where_, "no ASLR for a prelinked binary");
    }
}

#[test]
fn what_it_cannot_prelink_it_refuses_and_says_why() {
    if !have_cc() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let fixed = compile(dir.path(), "fixed", &["-no-pie"]).expect("cc builds a non-PIE");
    let o = prelink(&fixed, &dir.path().join("out"));
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("not position-independent"), "{err}");
    assert!(!dir.path().join("out").exists(), "nothing written");
    let text = dir.path().join("text");
    std::fs::write(&text, "not an ELF file").unwrap();
    let o = prelink(&text, &dir.path().join("out2"));
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a 64-bit little-endian ELF"));
    // a base the segments' alignment does not divide
    let pie = compile(dir.path(), "pie", &["-fPIE", "-pie"]).unwrap();
    let o = Command::new("python3")
        .arg(top().join("build/prelink.py"))
        .arg(&pie)
        .arg(dir.path().join("out3"))
        .arg("0x400100")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a multiple"));
}
