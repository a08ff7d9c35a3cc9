#!/usr/bin/env bash
# ros/network: `ros netconf` (bind-mounted from the host) drives busybox
# udhcpc and iproute2's ip; the udhcpc hook applies leases.
recipe_network() {
  local d=$1
  install_bins "$d" /sbin/ip
  mkdir -p "$d/usr/share/udhcpc"
  cat > "$d/usr/share/udhcpc/default.script" <<'S'
#!/bin/sh
# udhcpc hook: apply a lease with ip; resolv.conf is rewritten in place
# (it is bind-mounted from the host).
case "$1" in
  deconfig) ip -4 addr flush dev "$interface"; ip link set "$interface" up ;;
  bound|renew)
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" ${broadcast:+broadcast $broadcast} dev "$interface"
    for r in $router; do ip route replace default via "$r" dev "$interface"; break; done
    if [ -n "$dns" ]; then
      { [ -n "$domain" ] && echo "search $domain"; for s in $dns; do echo "nameserver $s"; done; } > /etc/resolv.conf
    fi
    echo "udhcpc: $interface $ip/${mask:-24} router ${router:-none} dns ${dns:-none}" ;;
esac
exit 0
S
  chmod 755 "$d/usr/share/udhcpc/default.script"
}
