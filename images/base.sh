#!/usr/bin/env bash
# ros/base: busybox (static) with its applets, glibc's loader and libc (for
# the dynamic tools of the images above it), users and groups. Every other
# image is this layer plus its own. The groups include every one udev's
# stock rules name (video, audio, kvm, …), so udevd does not complain.
recipe_base() {
  local d=$1
  mkdir -p "$d"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,root,home,var/log,var/lib,var/run,run,proc,sys,dev,lib64,lib/x86_64-linux-gnu}
  chmod 1777 "$d/tmp"
  cp "$SYSROOT/bin/busybox" "$d/bin/busybox"
  local a
  for a in $("$SYSROOT/bin/busybox" --list-full); do
    case "$a" in */reboot|*/poweroff|*/halt|*/init|*/linuxrc) continue ;; esac
    [ -e "$d/$a" ] || ln -s /bin/busybox "$d/$a"
  done
  # glibc: loader, libc and friends (nss files/dns are built into 2.36)
  local l
  for l in ld-linux-x86-64.so.2 libc.so.6 libm.so.6 libpthread.so.0 libdl.so.2 libresolv.so.2 librt.so.1; do
    cp -L "$SYSROOT/lib/x86_64-linux-gnu/$l" "$d/lib/x86_64-linux-gnu/$l"
  done
  ln -sf /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$d/lib64/ld-linux-x86-64.so.2"
  cat > "$d/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
rancher:x:1100:1100:rancher:/home/rancher:/bin/sh
_chrony:x:100:101:chrony:/var/lib/chrony:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
P
  cat > "$d/etc/group" <<'G'
root:x:0:
tty:x:5:rancher
disk:x:6:
lp:x:7:
wheel:x:10:rancher
kmem:x:15:
dialout:x:20:
cdrom:x:24:
tape:x:26:
audio:x:29:
video:x:44:
_chrony:x:101:
input:x:104:
kvm:x:105:
render:x:106:
sgx:x:107:
docker:x:998:rancher
rancher:x:1100:
nogroup:x:65534:
G
  printf 'root:*:19000:0:99999:7:::\nrancher:*:19000:0:99999:7:::\n_chrony:*:19000::::::\nnobody:*:19000::::::\n' > "$d/etc/shadow"
  chmod 640 "$d/etc/shadow"
  printf '/bin/sh\n/bin/ash\n' > "$d/etc/shells"
  printf 'passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n' > "$d/etc/nsswitch.conf"
  printf 'NAME="ros"\nID=ros\nVERSION_ID=%s\nPRETTY_NAME="ros %s"\n' "$ROS_VERSION" "$ROS_VERSION" > "$d/etc/os-release"
  cat > "$d/etc/profile" <<'R'
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
alias system-docker='docker -H unix:///var/run/system-docker.sock'
PS1='\u@\h:\w\$ '
R
}
