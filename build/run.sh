#!/usr/bin/env bash
# The main job: build dist/ros.iso and boot it in QEMU with the serial
# console attached to this terminal. The boot ends at a `login:` prompt.
#   Get out: Ctrl-a x (QEMU's escape key, then x) ends QEMU at once.
# Options (environment):
#   ROS_SKIP_BUILD=1       boot the existing dist/ros.iso
#   ROS_USER_DATA=FILE     attach FILE as NoCloud user-data (a `cidata` drive)
#   ROS_STATE_DISK=FILE    attach FILE as the state disk (created 2G, formatted
#                          on first boot)
#   ROS_SSH_PORT=2222      host port forwarded to the guest's sshd
set -euo pipefail
cd "$(dirname "$0")/.."

[ -n "${ROS_SKIP_BUILD:-}" ] && [ -e dist/ros.iso ] || bash build/build.sh

args=(-m 2048 -smp 2 -nographic -cdrom dist/ros.iso -boot d
      -nic "user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:${ROS_SSH_PORT:-2222}-:22")
if [ -n "${ROS_STATE_DISK:-}" ]; then
  [ -e "$ROS_STATE_DISK" ] || truncate -s 2G "$ROS_STATE_DISK"
  args+=(-drive "file=$ROS_STATE_DISK,if=virtio,format=raw")
fi
if [ -n "${ROS_USER_DATA:-}" ]; then
  seed=$(mktemp -d)
  cp "$ROS_USER_DATA" "$seed/user-data"
  echo "instance-id: ros-run" > "$seed/meta-data"
  xorriso -as mkisofs -quiet -V cidata -J -r -o dist/cidata.iso "$seed" 2>/dev/null
  rm -rf "$seed"
  args+=(-drive "file=dist/cidata.iso,if=virtio,format=raw,readonly=on")
fi
# KVM when it works (it hangs on some hosts: see qemu-tests/run.sh), else TCG.
if [ -w /dev/kvm ] && [ -z "${ROS_NO_KVM:-}" ] &&
   timeout 20 qemu-system-x86_64 -enable-kvm -m 256 -display none -no-reboot \
     -kernel dist/vmlinuz -append "panic=-1" -serial none >/dev/null 2>&1; then
  args+=(-enable-kvm -cpu host)
fi
echo "== booting dist/ros.iso; serial console below. Quit QEMU: Ctrl-a x =="
exec qemu-system-x86_64 "${args[@]}"
