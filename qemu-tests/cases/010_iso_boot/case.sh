# Boots dist/ros.iso (grub, no keypress) with a NoCloud cidata drive; the
# guest checks itself, the host logs in over SSH, then the guest powers off.
# On the console (`dialog`): user-data means no autologin, and `rancher`
# without ros.password is refused in words.
BOOT=iso
TIMEOUT=900
# markers the console must show, in any order
EXPECT=("store [0-9]* MB squashfs on /dev/loop[0-9]* from the medium /dev/sr0" "ros init: \[12/12\] sysinit ok" "system-docker answering" "login:" "CHECK-DONE" "ros init: Poweroff now" "HOST-DIALOG done")
# markers that fail the case
REJECT=("CHECK FAIL" "FATAL" "Kernel panic" "Unknown group" "bad salt" "ros init: \[[0-9]*/[0-9]*\] [a-z-]* failed")
SSH_AFTER="READY-FOR-SSH"
