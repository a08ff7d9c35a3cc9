#!/bin/sh
# Guest side of 010: system services, DHCP, hostname, write_files, runcmd,
# the user engine, `docker rm -f` leaving system services, SSH, poweroff.
. /media/cidata/guest-lib.sh
say "CHECK start at uptime $(uptime_s)"
services="udev network ntp syslog console docker"
has_services() { names=$(sdocker ps --format '{{.Names}}'); for s in $services; do echo "$names" | grep -qx "$s" || return 1; done; }
chk system-services wait_for 60 has_services
sdocker ps --format 'table {{.Names}}\t{{.Image}}\t{{.Status}}' > /dev/console
chk dhcp-eth0 wait_for 60 sh -c 'ip -4 addr show dev eth0 | grep -q "inet 10.0.2.15/"'
chk hostname sh -c '[ "$(hostname)" = qemu-one ]'
chk write-files grep -qx "written by write_files" /host/etc/qemu-test-file
chk runcmd grep -qx runcmd-ran /var/lib/ros/runcmd-ran
if wait_for 60 timeout 10 docker info || { sdocker logs --tail 30 docker 2>&1 | sed 's/^/  docker| /' > /dev/console; wait_for 120 timeout 10 docker info; }; then
  say "MILESTONE user-docker-ready uptime $(uptime_s)"
  ok user-docker-ready
else
  bad user-docker-ready
  sdocker ps -a > /dev/console
  sdocker logs --tail 40 docker 2>&1 | sed 's/^/  docker| /' > /dev/console
fi
chk image-into-user-docker sh -c 'docker -H unix:///var/run/system-docker.sock save ros/base:0.1.0 | docker load'
chk user-container sh -c 'docker run --rm ros/base:0.1.0 echo hello-from-user-docker | grep -qx hello-from-user-docker'
chk user-container-detached docker run -d --name sleeper ros/base:0.1.0 sleep 600
chk docker-rm-all sh -c 'docker rm -f $(docker ps -aq)'
chk system-services-after-rm has_services
chk user-docker-after-rm timeout 20 docker info
figures
say "READY-FOR-SSH"
chk ssh-login wait_for 180 test -e /home/rancher/ssh-ok
say "CHECK-DONE at uptime $(uptime_s)"
sleep 1
ros os poweroff
