#!/usr/bin/env bash
# ros/udev: systemd-udevd and udevadm with the stock rules (no hwdb).
recipe_udev() {
  local d=$1
  install_bins "$d" /bin/udevadm
  mkdir -p "$d/lib/systemd" "$d/lib/udev"
  ln -sf /bin/udevadm "$d/lib/systemd/systemd-udevd"
  cp -a "$SYSROOT/lib/udev/rules.d" "$d/lib/udev/"
  local h
  for h in ata_id cdrom_id scsi_id mtd_probe v4l_id; do
    [ -e "$SYSROOT/lib/udev/$h" ] && install_bins "$d" "/lib/udev/$h"
  done
  mkdir -p "$d/etc/udev/rules.d"
  cp -a "$SYSROOT/etc/udev/udev.conf" "$d/etc/udev/" 2>/dev/null || true
}
