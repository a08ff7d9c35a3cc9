#!/usr/bin/env bash
# dist/ros.iso (BIOS + UEFI via grub-mkrescue): boots the default entry at
# once, console on VGA and the first serial port. The store (squashfs) is a
# file on the CD, not in the initrd: GRUB reads a small initrd, and PID 1
# mounts the medium labelled ROS and the store from it (src/init/stages.rs).
#   build/iso.sh VMLINUZ INITRD_CORE STORE OUT
set -euo pipefail
source "$(dirname "$0")/lib.sh"
vmlinuz=$1 initrd=$2 store=$3 out=$4
d=$ROS_WORK/iso
rm -rf "$d"; mkdir -p "$d/boot/grub"
cp "$vmlinuz" "$d/boot/vmlinuz"
cp "$initrd" "$d/boot/initrd"
cp "$store" "$d/ros-store.sqfs"
cat > "$d/boot/grub/grub.cfg" <<'G'
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set timeout=0
set default=0
menuentry "ros" {
  linux /boot/vmlinuz console=tty0 console=ttyS0,115200n8 quiet
  initrd /boot/initrd
}
menuentry "ros (autologin on the consoles)" {
  linux /boot/vmlinuz console=tty0 console=ttyS0,115200n8 quiet ros.autologin=true
  initrd /boot/initrd
}
G
# Only the GRUB modules this menu uses (BIOS and UEFI), no locales, fonts or
# themes: GRUB's share of the ISO drops from ~20 MB to ~4 MB (issue 16).
mods="linux normal iso9660 part_msdos part_gpt fat search search_label search_fs_uuid
  search_fs_file serial terminal echo test configfile all_video video video_bochs
  video_cirrus"
grub=(grub-mkrescue --install-modules="$(echo $mods)" --locales= --fonts= --themes= --compress=xz)
"${grub[@]}" -o "$out.tmp" "$d" -- -volid ROS >/dev/null 2>&1 || {
  "${grub[@]}" -o "$out.tmp" "$d" -- -volid ROS; exit 1; }
mv "$out.tmp" "$out"
