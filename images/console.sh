#!/usr/bin/env bash
# ros/console: agetty on tty1/ttyS0 with busybox login, dropbear as the sshd
# (keys from ssh_authorized_keys for `rancher`). The docker and ros CLIs are
# the host's, bind-mounted by the service (one copy in the initrd).
recipe_console() {
  local d=$1
  install_bins "$d" /sbin/agetty /usr/sbin/dropbear /usr/bin/dropbearkey
  mkdir -p "$d/home/rancher" "$d/etc/dropbear" "$d/var/log"
  printf 'ros \\r (\\l)\n\n' > "$d/etc/issue"
  printf 'Welcome to ros. system-docker ps: system services; docker: your containers.\n' > "$d/etc/motd"
  : > "$d/var/log/wtmp"
  : > "$d/var/log/lastlog"
}
