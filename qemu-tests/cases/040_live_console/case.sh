# The first five minutes, as a person at the serial console: the ISO with
# no user-data and no state disk (a live boot) logs `rancher` in by itself,
# shows the motd, and the first commands work: `ros service ps` (sudo
# behind the scenes), `docker run --rm busybox echo hi` (busybox preloaded
# into the user engine, no registry), `sudo ros config get hostname`. The
# boot console is quiet: no udev `Unknown group` lines, no kernel messages
# between the `[i/n]` stage lines. One ISO boot (~100 s under TCG).
BOOT=iso
SEED=none
TIMEOUT=600
EXPECT=("ros init: \[12/12\] sysinit ok" "HOST-DIALOG done" "ros init: Poweroff now")
REJECT=("FATAL" "Kernel panic" "Unknown group" "bad salt" "ros init: \[[0-9]*/[0-9]*\] [a-z-]* failed")
post_check() { bash "$here/quiet-console.sh" "$1"; }
