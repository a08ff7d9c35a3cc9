#!/usr/bin/env bash
# The main job: build dist/ros.iso and boot it in QEMU with the serial
# console attached to this terminal. A live boot (no user-data, no state
# disk) logs `rancher` in by itself; with user-data or a state disk the
# console shows a `login:` prompt.
#   Get out: Ctrl-a x (QEMU's escape key, then x) ends QEMU at once.
# Options (environment):
#   ROS_SKIP_BUILD=1       boot the existing dist/ros.iso
#   ROS_USER_DATA=FILE     attach FILE as NoCloud user-data (a `cidata` drive)
#   ROS_STATE_DISK=FILE    attach FILE as the state disk (created 2G, formatted
#                          on first boot)
#   ROS_SSH_PORT=2222      host port forwarded to the guest's sshd
#   ROS_CLUSTER=1          the node runs the cluster server and an agent
#                          (ros.cluster.role: both, insecure_http: the host reaches
#                          it through QEMU user networking); its API is forwarded to
#                          http://127.0.0.1:${ROS_API_PORT:-8080}
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -n "${ROS_SKIP_BUILD:-}" ] && [ -e dist/ros.iso ]; then
  echo "== ROS_SKIP_BUILD: booting the existing dist/ros.iso ($(du -h dist/ros.iso | cut -f1))"
else
  echo "== building dist/ros.iso (build/build.sh; each step prints its time and sizes)"
  bash build/build.sh
fi

api_port=${ROS_API_PORT:-8080}
fwd="hostfwd=tcp:127.0.0.1:${ROS_SSH_PORT:-2222}-:22"
user_data=${ROS_USER_DATA:-}
if [ -n "${ROS_CLUSTER:-}" ]; then
  if [ -n "$user_data" ]; then
    echo "run.sh: ROS_CLUSTER=1 writes its own user-data; with ROS_USER_DATA set ros.cluster.role: both in $user_data instead" >&2
    exit 2
  fi
  fwd+=",hostfwd=tcp:127.0.0.1:$api_port-:8080"
  user_data=dist/cluster-user-data.yml
  # user-data turns the live autologin off; this demo node keeps it on
  printf '#cloud-config\nros:\n  autologin: true\n  cluster:\n    role: both\n    insecure_http: true\n' > "$user_data"
fi

args=(-m 2048 -smp 2 -nographic -cdrom dist/ros.iso -boot d
      -nic "user,model=virtio-net-pci,$fwd")
if [ -n "${ROS_STATE_DISK:-}" ]; then
  [ -e "$ROS_STATE_DISK" ] || truncate -s 2G "$ROS_STATE_DISK"
  args+=(-drive "file=$ROS_STATE_DISK,if=virtio,format=raw")
fi
if [ -n "$user_data" ]; then
  seed=$(mktemp -d)
  cp "$user_data" "$seed/user-data"
  echo "instance-id: ros-run" > "$seed/meta-data"
  xorriso -as mkisofs -quiet -V cidata -J -r -o dist/cidata.iso "$seed" 2>/dev/null
  rm -rf "$seed"
  args+=(-drive "file=dist/cidata.iso,if=virtio,format=raw,readonly=on")
fi
# KVM when it works (it hangs on some hosts: see qemu-tests/run.sh), else TCG.
accel="TCG (software; the boot takes a minute or two)"
if [ -w /dev/kvm ] && [ -z "${ROS_NO_KVM:-}" ] &&
   timeout 20 qemu-system-x86_64 -enable-kvm -m 256 -display none -no-reboot \
     -kernel dist/vmlinuz -append "panic=-1" -serial none >/dev/null 2>&1; then
  args+=(-enable-kvm -cpu host)
  accel=KVM
fi
echo "== booting dist/ros.iso under $accel; serial console below"
if [ -n "${ROS_CLUSTER:-}" ]; then
  echo "   login: automatic, as rancher (ros.autologin: true); sudo works without a password"
elif [ -n "$user_data" ] || [ -n "${ROS_STATE_DISK:-}" ]; then
  echo "   login: rancher with ros.password from the user-data (or ssh -p ${ROS_SSH_PORT:-2222} rancher@127.0.0.1 with ssh_authorized_keys)"
else
  echo "   login: automatic, as rancher (live boot); sudo works without a password"
fi
if [ -n "${ROS_CLUSTER:-}" ]; then
  echo "   cluster API: http://127.0.0.1:$api_port (server + agent on the node, once it is up)"
  echo "     curl -s http://127.0.0.1:$api_port/v1/projects/1a5/hosts; ROS_URL=http://127.0.0.1:$api_port ros cluster hosts"
fi
echo "   quit QEMU: Ctrl-a x"
exec qemu-system-x86_64 "${args[@]}"
