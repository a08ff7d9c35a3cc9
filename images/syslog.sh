#!/usr/bin/env bash
# ros/syslog: busybox syslogd (from the base layer) writing /var/log/messages.
recipe_syslog() {
  local d=$1
  mkdir -p "$d/etc"
  : > "$d/etc/syslog.conf"
}
