//! PID 1. Boot stages, the reap loop and shutdown arrive with the PID-1
//! work; until then `init` says what it is and exits non-zero, so nobody
//! mistakes this build for a bootable one.

/// Entry point when the binary runs as `init`.
pub fn main() -> i32 {
    eprintln!(
        "ros init {}: PID 1 is not implemented in this build yet",
        crate::paths::VERSION
    );
    1
}
