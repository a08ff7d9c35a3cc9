#!/usr/bin/env bash
# ros/console: agetty on tty1/ttyS0 with busybox login behind
# `console-login` (a link to ros: a locked account is refused in words),
# dropbear as the sshd (keys from ssh_authorized_keys for `rancher`), sudo
# for `rancher` (no password, as RancherOS), and `ros motd` after login.
# The docker and ros CLIs are the host's, bind-mounted by the service (one
# copy in the initrd).
recipe_console() {
  local d=$1
  # sudo finds libsudo_util by its RUNPATH (/usr/libexec/sudo)
  mkdir -p "$d/usr/libexec/sudo"
  cp -a "$SYSROOT"/usr/libexec/sudo/libsudo_util.so* "$d/usr/libexec/sudo/"
  install_bins "$d" /sbin/agetty /usr/sbin/dropbear /usr/bin/dropbearkey \
    /usr/bin/sudo /usr/libexec/sudo/sudoers.so
  chmod 4755 "$d/usr/bin/sudo"
  mkdir -p "$d/lib/x86_64-linux-gnu/security" "$d/etc/pam.d" "$d/etc/sudoers.d"
  cp "$SYSROOT"/lib/x86_64-linux-gnu/security/pam_{permit,deny}.so "$d/lib/x86_64-linux-gnu/security/"
  # rancher runs anything as root without a password (NOPASSWD: no PAM
  # authentication); everyone else is refused.
  printf 'auth required pam_deny.so\naccount required pam_permit.so\nsession required pam_permit.so\n' > "$d/etc/pam.d/sudo"
  printf 'auth required pam_deny.so\naccount required pam_deny.so\nsession required pam_deny.so\n' > "$d/etc/pam.d/other"
  cat > "$d/etc/sudoers" <<'S'
Defaults env_reset, !lecture
Defaults secure_path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
Defaults env_keep += "ROS_URL RANCHER_URL ROS_ACCESS_KEY ROS_SECRET_KEY"
root ALL=(ALL:ALL) ALL
rancher ALL=(ALL:ALL) NOPASSWD: ALL
S
  chmod 440 "$d/etc/sudoers"
  mkdir -p "$d/usr/sbin"
  ln -sf /usr/bin/ros "$d/usr/sbin/console-login"
  mkdir -p "$d/home/rancher" "$d/etc/dropbear" "$d/var/log"
  printf 'ros \\r (\\l)\n\n' > "$d/etc/issue"
  # busybox login prints /etc/motd; ours is computed at login (IP, role)
  rm -f "$d/etc/motd"
  cat > "$d/etc/profile" <<'R'
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
alias system-docker='ros system-docker'
PS1='\u@\h:\w\$ '
[ -t 1 ] && [ -x /usr/bin/ros ] && /usr/bin/ros motd
R
  : > "$d/var/log/wtmp"
  : > "$d/var/log/lastlog"
}
