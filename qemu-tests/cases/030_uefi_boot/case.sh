# The ISO under UEFI firmware (OVMF): grub's EFI image boots the default
# entry without a keypress and the system comes up to a login prompt. The
# host stops QEMU once every marker is seen (the other cases cover the rest).
BOOT=uefi
TIMEOUT=400
STOP_WHEN_SEEN=1
EXPECT=("ros init: \[12/12\] sysinit ok" "system-docker answering" "login:")
REJECT=("FATAL" "Kernel panic")
