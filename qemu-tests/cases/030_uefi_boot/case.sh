# The ISO under UEFI firmware (OVMF): grub's EFI image boots the default
# entry without a keypress and the system comes up to a login prompt, with
# its hostname from an OpenStack config drive (`config-2`). The host stops
# QEMU once every marker is seen (the other cases cover the rest). On the
# console (`dialog`): no autologin with user-data, a wrong password refused,
# the right `ros.password` logs in, sudo works, and `ros.cluster.role: both`
# runs the `cluster` system service whose agent registers the host with
# its server (what `ROS_CLUSTER=1 bash build/run.sh` does).
BOOT=uefi
SEED=configdrive
TIMEOUT=900
STOP_WHEN_SEEN=1
EXPECT=("ros init: \[12/12\] sysinit ok" "config-2 drive" "system-docker answering" "uefi-boot login:" "HOST-DIALOG done")
REJECT=("FATAL" "Kernel panic" "Unknown group" "bad salt")
