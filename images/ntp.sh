#!/usr/bin/env bash
# ros/ntp: chronyd.
recipe_ntp() {
  local d=$1
  install_bins "$d" /usr/sbin/chronyd /usr/bin/chronyc
  mkdir -p "$d/etc/chrony" "$d/var/lib/chrony" "$d/run/chrony"
  printf 'pool pool.ntp.org iburst\ndriftfile /var/lib/chrony/chrony.drift\nmakestep 1.0 3\nrtcsync\n' > "$d/etc/chrony/chrony.conf"
}
