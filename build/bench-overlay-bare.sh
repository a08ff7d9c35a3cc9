#!/usr/bin/env bash
# The ceiling of the overlay benchmark's rig, without ros: the same shape
# as tests/cluster_network.rs's iperf3 bench (two "hosts" as network
# namespaces on a bridge, veth underlay MTU 1500; on each a bridge with a
# kernel VXLAN device, VNI 5, UDP 4789, learning off, ARP proxy, static
# FDB/neighbour entries, and a "container" namespace on a veth with MTU
# 1450), no iptables rules, no docker. Prints single-stream iperf3 figures
# for the underlay and the overlay, interleaved, and their medians.
# Needs root, iproute2 and iperf3 (`apt-get install iperf3`; a bench-only
# tool, not in build/deps.sh). Its links and namespaces start with "bo".
# ROUNDS (default 5) of SECS (default 5) each. For experiments:
# PIN=<cpu> runs both iperf3 ends on that one CPU (every softirq of the
# path follows them there, so the ratio is the underlay's CPU cost per byte
# over the overlay's, without the scheduler's and other jobs' noise);
# CC=<name> picks the TCP congestion control (iperf3 -C); EXTRA=<shell>
# runs after the rig is up and before the iperf3 servers (e.g. an ethtool
# or sysctl to try); KEEP=1 leaves the rig up at the end.
set -euo pipefail
command -v iperf3 >/dev/null || { echo "bench-overlay-bare: needs iperf3 (apt-get install iperf3)" >&2; exit 1; }
ROUNDS=${ROUNDS:-5}; SECS=${SECS:-5}
pin=(); [ -n "${PIN:-}" ] && pin=(taskset -c "$PIN")
cc=(); [ -n "${CC:-}" ] && cc=(-C "$CC")
down() {
  for n in boa1 boa2 boc1 boc2; do
    for p in $(ip netns pids "$n" 2>/dev/null); do kill "$p" 2>/dev/null || true; done
  done
  sleep 0.3
  for n in boc1 boc2 boa1 boa2; do ip netns del "$n" 2>/dev/null || true; done
  for l in bov1 bov2 bobr; do ip link del "$l" 2>/dev/null || true; done
}
[ -n "${KEEP:-}" ] || trap down EXIT
down
ip link add bobr type bridge && ip link set bobr up
for i in 1 2; do
  a=boa$i c=boc$i
  ip netns add $a; ip netns add $c
  ip link add bov$i type veth peer name eth0 netns $a
  ip link set bov$i master bobr up
  ip -n $a addr add 192.168.78.$i/24 dev eth0
  ip -n $a link set eth0 up; ip -n $a link set lo up
  ip -n $a link add rb type bridge; ip -n $a link set rb up
  ip -n $a addr add 10.98.0.1/16 dev rb
  ip -n $a link add vx type vxlan id 5 dstport 4789 local 192.168.78.$i nolearning proxy
  ip -n $a link set vx mtu 1450 master rb up
  ip link add bocv$i netns $a type veth peer name eth0 netns $c
  ip -n $a link set bocv$i mtu 1450 master rb up
  ip -n $c link set eth0 mtu 1450 address 02:42:0a:62:00:1$i up
  ip -n $c addr add 10.98.0.1$i/16 dev eth0
  ip -n $c link set lo up
done
for i in 1 2; do
  j=$((3 - i))
  bridge -n boa$i fdb add 02:42:0a:62:00:1$j dev vx dst 192.168.78.$j self permanent
  ip -n boa$i neigh add 10.98.0.1$j lladdr 02:42:0a:62:00:1$j dev vx nud permanent
done
eval "${EXTRA:-true}"
"${pin[@]}" ip netns exec boa2 iperf3 -s -D -p 5301
"${pin[@]}" ip netns exec boc2 iperf3 -s -D -p 5302
sleep 0.5
# Gbit/s and the sender's retransmits (reordering shows there).
gbps() { python3 -c 'import json,sys; e = json.load(sys.stdin)["end"]; print("%.2f %d" % (e["sum_received"]["bits_per_second"] / 1e9, e["sum_sent"]["retransmits"]))'; }
o=(); u=()
for r in $(seq "$ROUNDS"); do
  read -r ov ovr < <("${pin[@]}" ip netns exec boc1 iperf3 -c 10.98.0.12 -p 5302 "${cc[@]}" -t "$SECS" -J | gbps)
  read -r un unr < <("${pin[@]}" ip netns exec boa1 iperf3 -c 192.168.78.2 -p 5301 "${cc[@]}" -t "$SECS" -J | gbps)
  echo "round $r: bare VXLAN overlay $ov Gbit/s ($ovr retransmits), underlay $un Gbit/s ($unr retransmits)"
  o+=("$ov"); u+=("$un")
done
python3 - "${o[*]}" "${u[*]}" <<'PY'
import statistics, sys
o = [float(x) for x in sys.argv[1].split()]
u = [float(x) for x in sys.argv[2].split()]
mo, mu = statistics.median(o), statistics.median(u)
print(f"median of {len(o)}: bare VXLAN overlay {mo:.2f} Gbit/s, underlay {mu:.2f} Gbit/s, ratio {mo / mu:.2f}")
PY
