#!/usr/bin/env bash
# ros/lb-haproxy: the load balancer service's container (issue 13).
# HAProxy from Debian with its libraries, static busybox for the entrypoint
# (sh, sleep), nothing else. The agent writes /run/lb/haproxy.cfg into the
# container's `ros-lb-<instance>` volume; the entrypoint waits for it and
# runs HAProxy in master-worker mode with the master CLI on
# /run/lb/master.sock (reloads) — the worker's runtime API is the
# `stats socket` the config names (/run/lb/admin.sock).
#   images/haproxy.sh            → $ROS_WORK/user-images/lb-haproxy.tar
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../build/lib.sh"
source "$here/lib.sh"

unpack_debs haproxy busybox-static
d=$ROS_WORK/layers/lb-haproxy
rm -rf "$d"; mkdir -p "$d"/{bin,etc,tmp,run/lb,var/lib/haproxy,lib64,lib/x86_64-linux-gnu}
chmod 1777 "$d/tmp"
cp "$SYSROOT/bin/busybox" "$d/bin/busybox"
for a in sh sleep cat ls; do ln -s busybox "$d/bin/$a"; done
install_bins "$d" /usr/sbin/haproxy
printf 'root:x:0:0:root:/root:/bin/sh\nhaproxy:x:100:101::/var/lib/haproxy:/bin/false\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$d/etc/passwd"
printf 'root:x:0:\nhaproxy:x:101:\nnogroup:x:65534:\n' > "$d/etc/group"
cat > "$d/bin/lb-entrypoint" <<'S'
#!/bin/sh
# Wait for the agent's first haproxy.cfg, then run HAProxy master-worker
# in the foreground; the master CLI takes `reload`.
cfg=/run/lb/haproxy.cfg
while [ ! -s "$cfg" ]; do sleep 0.1; done
rm -f /run/lb/master.sock
exec /usr/sbin/haproxy -W -db -S /run/lb/master.sock,mode,600 -f "$cfg"
S
chmod 755 "$d/bin/lb-entrypoint"
mkdir -p "$ROS_WORK/user-images"
out=$ROS_WORK/user-images/lb-haproxy.tar
save_archive "$out" "ros/lb-haproxy:$ROS_VERSION" '["/bin/lb-entrypoint"]' "$d"
log "user image ros/lb-haproxy:$ROS_VERSION $(du -h "$out" | cut -f1) ($(du -sh "$d" | cut -f1) unpacked)"
