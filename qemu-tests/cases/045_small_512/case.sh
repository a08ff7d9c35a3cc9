# The small node: boots dist/ros.iso with 512 MB of RAM, reaches the login
# prompt, runs a user container (the preloaded busybox) and prints the
# memory figures (guest memory used after boot, idle RSS per process);
# fails if any of that stops being true (e.g. system-dockerd killed for
# want of memory, the boot ending in the emergency shell).
BOOT=iso
MEM=512
TIMEOUT=900
EXPECT=("ros init: \[12/12\] sysinit ok" "login:" "CHECK ok user-container" "CHECK ok memory-figures" "CHECK-DONE" "ros init: Poweroff now")
REJECT=("CHECK FAIL" "FATAL" "Kernel panic" "emergency shell" "Out of memory" "oom-kill" "ros init: \[[0-9]*/[0-9]*\] [a-z-]* failed")
