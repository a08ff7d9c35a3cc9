#!/usr/bin/env bash
# quiet-console.sh LOG: the boot console is quiet. From PID 1's first line
# to the login (prompt or autologin): no kernel messages (`[  12.345678] …`),
# and nowhere a udev `Unknown group` complaint. Prints what it found.
log=$1
bad=$(tr -d '\r' < "$log" | awk '
  /ros init: ros .* starting/ { on = 1 }
  on && /\[ *[0-9]+\.[0-9]+\] / { print "kernel line between stages: " $0 }
  /login:|rancher@/ { on = 0 }
  /Unknown group/ { print "udev: " $0 }')
if [ -n "$bad" ]; then echo "$bad"; exit 1; fi
echo "quiet console: no kernel or udev lines from PID 1 to the login"
