#!/bin/sh
# Guest side of 046: on each boot, the user engine answers and runs a
# container; boot 2 also finds boot 1's mark on the state disk.
. /media/cidata/guest-lib.sh
say "CHECK start at uptime $(uptime_s)"
chk state-mounted grep -q " /var/lib/ros " /proc/1/mounts
if [ -e /var/lib/ros/boot-1-done ]; then ok boot-1-was-here; fi
if wait_for 180 timeout 10 docker info; then
  say "MILESTONE user-docker-ready uptime $(uptime_s)"
else
  bad user-docker-ready
fi
chk user-container sh -c '. /media/cidata/guest-lib.sh; wait_for 60 docker image inspect busybox && docker run --rm busybox echo hello | grep -qx hello'
touch /var/lib/ros/boot-1-done
sync
say "CHECK-DONE at uptime $(uptime_s)"
say "SHUTDOWN-START"
ros os poweroff
sleep 600
