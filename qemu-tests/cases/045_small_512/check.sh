#!/bin/sh
# Guest side of 045 (512 MB): system services up, the user engine runs a
# container, then the memory figures once the node is idle, and poweroff.
. /media/cidata/guest-lib.sh
say "CHECK start at uptime $(uptime_s)"
# first: the user engine's first answer to a client on the node
if wait_for 180 timeout 10 docker info; then
  say "MILESTONE user-docker-ready uptime $(uptime_s)"
  ok user-docker-ready
else
  bad user-docker-ready
  sdocker logs --tail 40 docker 2>&1 | sed 's/^/  docker| /' > /dev/console
fi
services="udev network ntp syslog console docker cluster"
has_services() { names=$(sdocker ps --format '{{.Names}}'); for s in $services; do echo "$names" | grep -qx "$s" || return 1; done; }
chk system-services wait_for 120 has_services
# system-docker runs its containers with crun (a C runtime: no Go start-up
# per create/start/kill under TCG)
chk system-runtime-crun sh -c '. /media/cidata/guest-lib.sh; [ "$(sdocker info --format "{{.DefaultRuntime}}")" = crun ] && [ "$(sdocker inspect -f "{{.HostConfig.Runtime}}" console)" = crun ]'
# one runc v2 shim for every system container (ros-shim puts them in a
# group); the user engine's containers keep one each
chk one-system-shim sh -c 'n=0; for p in /proc/[0-9]*; do tr "\0" " " < $p/cmdline 2>/dev/null | grep -q "[c]ontainerd-shim-runc-v2 .*-address /var/run/system-docker/" && n=$((n+1)); done; echo "system-docker shims: $n" > /dev/console; [ "$n" -eq 1 ]'
# ros-shim hands a new system container the group's running shim itself
# (no Go start of the real shim to print an address): the socket it works
# out is the one the real shim serves, and every system bundle was given it
group=ce942272d37d216b27590fcebbe6ebda2cee8caf097846f2a075ff44d2d99dee
chk shim-group-address sh -c "[ -S /var/run/containerd/s/$group ] && n=0 && for f in /var/run/system-docker/containerd/daemon/io.containerd.runtime.v2.task/moby/*/address; do [ \"\$(cat \$f)\" = unix:///run/containerd/s/$group ] || exit 1; n=\$((n+1)); done; echo \"system bundles on the group shim: \$n\" > /dev/console; [ \$n -ge 5 ]"
# workloads too run under crun by default (runc stays registered)
chk user-runtime-crun sh -c '[ "$(docker info --format "{{.DefaultRuntime}}")" = crun ] && docker info --format "{{json .Runtimes}}" | grep -q "\"runc\""'
chk user-container sh -c '. /media/cidata/guest-lib.sh; wait_for 60 docker image inspect busybox && docker run --rm busybox echo hello-from-512 | grep -qx hello-from-512'
# one iptables backend on the node (legacy, the ros/docker image's): the
# user engine's chains are there
chk iptables-legacy sh -c '. /media/cidata/guest-lib.sh; sdocker exec docker iptables -V | grep -q legacy && sdocker exec docker iptables -t nat -S DOCKER > /dev/null && sdocker exec docker iptables -S DOCKER-USER > /dev/null'
# the open-file limit containers inherit (HAProxy needs > 4096)
chk nofile-limit sh -c 'n=$(docker run --rm busybox sh -c "ulimit -Hn"); echo "containers: ulimit -Hn $n" > /dev/console; [ "$n" -ge 65536 ]'
# idle: let the boot's one-shots settle before measuring
sleep 10
chk memory-figures sh -c '. /media/cidata/guest-lib.sh; figures; rss_all'
say "CHECK-DONE at uptime $(uptime_s)"
say "SHUTDOWN-START"
ros os poweroff
