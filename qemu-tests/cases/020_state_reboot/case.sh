# A blank state disk autoformatted on first boot; `ros config set` there
# survives a reboot. The second boot gets an invalid user-data: it is
# reported, and the boot continues on the last good config (whose
# qemu-check service then checks the persisted hostname and powers off).
BOOT=kernel
BOOTS=2
DISK=512M
APPEND="ros.state.autoformat=[/dev/vda]"
TIMEOUT=600
EXPECT_1=("from the initramfs" "formatting blank /dev/vda" "CHECK ok config-set" "ros init: Reboot now")
EXPECT_2=("cloud-config error" "booting on the last good config" "CHECK ok persisted-hostname" "CHECK ok state-mounted" "ros init: Poweroff now")
REJECT=("CHECK FAIL" "FATAL" "Kernel panic")
