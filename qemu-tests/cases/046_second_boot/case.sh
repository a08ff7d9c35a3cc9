# Issue 16's "second boot on a state disk at least as fast": the same node
# (512 MB, the same user-data) boots twice on one state disk. Boot 1
# autoformats the blank disk; boot 2 finds system-docker's and the user
# engine's state from boot 1 on it. Both reach login:, run a user container
# and power off; build/figures.sh compares their milestone times. Opt-in
# (a figure, not a timed test): ROS_FIGURES=1 or build/figures.sh.
SKIP_UNLESS=ROS_FIGURES
BOOT=kernel
BOOTS=2
MEM=512
DISK=1G
APPEND="ros.state.autoformat=[/dev/vda]"
TIMEOUT=600
EXPECT_1=("formatting blank /dev/vda" "login:" "CHECK ok state-mounted" "CHECK ok user-container" "ros init: Poweroff now")
EXPECT_2=("login:" "CHECK ok state-mounted" "CHECK ok boot-1-was-here" "CHECK ok user-container" "ros init: Poweroff now")
REJECT=("CHECK FAIL" "FATAL" "Kernel panic" "emergency shell")
# boot 2 must find the disk formatted, not format it again
post_check() { case $1 in *console-2.log) ! grep -aq "formatting blank" "$1" ;; esac; }
