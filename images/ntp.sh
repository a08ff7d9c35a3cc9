#!/usr/bin/env bash
# ros/ntp: chronyd (Debian busybox-static has no ntpd applet).
recipe_ntp() {
  local d=$1
  # chronyd only: chronyc (and its libedit/ncurses) is not needed to keep time
  install_bins "$d" /usr/sbin/chronyd
  mkdir -p "$d/etc/chrony" "$d/var/lib/chrony" "$d/run/chrony"
  printf 'pool pool.ntp.org iburst\ndriftfile /var/lib/chrony/chrony.drift\nmakestep 1.0 3\nrtcsync\n' > "$d/etc/chrony/chrony.conf"
}
