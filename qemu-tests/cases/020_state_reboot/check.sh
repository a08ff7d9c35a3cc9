#!/bin/sh
# Guest side of 020: boot 1 sets the hostname with `ros config set` and
# reboots; boot 2 (invalid user-data) finds it persisted and powers off.
. /media/cidata/guest-lib.sh
chk state-mounted grep -q " /var/lib/ros " /proc/1/mounts
if [ ! -e /var/lib/ros/boot-1-done ]; then
  chk config-set ros config set hostname persisted-host
  touch /var/lib/ros/boot-1-done
  sync
  say "rebooting"
  ros os reboot
else
  chk persisted-hostname sh -c '[ "$(hostname)" = persisted-host ]'
  say "CHECK-DONE at uptime $(uptime_s)"
  ros os poweroff
fi
sleep 600
