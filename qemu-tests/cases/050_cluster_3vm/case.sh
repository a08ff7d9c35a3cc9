# Three machines booted from the same dist/ros.iso form a cluster with no
# manual step: each gets only its own cloud-config (user-data.in: address,
# role, the same pre-shared token), a pre-formatted state disk (label
# ROS_STATE) and a NIC on a bridge inside a network namespace this case
# creates (nothing leaves the machine). From the build host, through that
# namespace, the case waits for 3 active hosts, deploys a stack (web scale
# 3 with an HTTP health check behind a global load balancer on port 80),
# sends 30 requests through node2's port 80 (round robin over all three),
# kills node3 (lost: disconnected, its web container replaced on node1 or
# node2, requests still answered), boots node3 again (the same host id
# comes back active, its stale container removed). Figures go to
# figures.txt; console logs of every VM stay in qemu-tests/out/050_cluster_3vm/.
TIMEOUT=720
# In the default run (`bash build/test.sh`); alone:
# `bash qemu-tests/run.sh 050_cluster_3vm` (`ROS_KEEP_VMS=1` keeps the VMs).
TOKEN=ros3vm-preshared-join-token-2f9c41d7e0
ADMIN=ros3vm-admin-password-5b1e
NET=192.168.77

run_multi() {
  local o=$1 t0=$SECONDS
  # globals: the EXIT trap runs after this function's locals are gone
  ns="ros3vm$$"
  pid=()
  qdir=$o
  local log=$o/host.log
  local rosbin=""
  for b in "${CARGO_TARGET_DIR:-$top/target}/x86_64-unknown-linux-gnu/release/ros" "$top/target/x86_64-unknown-linux-gnu/release/ros" "$top/target/release/ros" "$top/target/debug/ros"; do
    [ -x "$b" ] && { rosbin=$b; break; }
  done
  [ -n "$rosbin" ] || { echo "no ros binary for the host side (build/build.sh builds one)" >> "$log"; return 1; }
  local -A boots=()
  say() { echo "HOST $(printf '%5ds' $((SECONDS - t0))) $*" | tee -a "$log"; }
  fig() { printf '050_cluster_3vm %-44s %6d s\n' "$1" "$((SECONDS - t0))" | tee -a "$figs"; }
  multi_cleanup() {
    local i
    if [ -n "${ROS_KEEP_VMS:-}" ]; then
      echo "ROS_KEEP_VMS: kept netns $ns and QEMU pids ${pid[*]} (ssh -i $key rancher@$NET.1N inside it)"
      return
    fi
    for i in "${!pid[@]}"; do [ -n "${pid[$i]}" ] && stop_vm "$i"; done
    ip netns del "$ns" 2>/dev/null
  }
  trap multi_cleanup EXIT
  inns() { ip netns exec "$ns" "$@"; }
  # The API over HTTPS, trusting the cluster CA read on node1 (below)
  api() { inns curl -fsS --max-time 10 --cacert "$o/ca.pem" -u "admin:$ADMIN" "https://$NET.11:8080$1"; }
  vm() { # vm I CMD: a command on node I over ssh
    local i=$1; shift
    timeout 60 ip netns exec "$ns" ssh -i "$key" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
      -o ConnectTimeout=10 -o BatchMode=yes -o LogLevel=ERROR "rancher@$NET.1$i" "$@"
  }
  json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }
  # wait_until SECONDS WHAT CMD...: poll CMD every 2 s
  wait_until() {
    local limit=$1 what=$2; shift 2
    local end=$((SECONDS + limit))
    until "$@" >/dev/null 2>&1; do
      if [ "$SECONDS" -ge "$end" ]; then say "TIMEOUT waiting ${limit}s for $what"; return 1; fi
      local i; for i in "${!pid[@]}"; do
        if [ -n "${pid[$i]}" ] && ! kill -0 "${pid[$i]}" 2>/dev/null; then say "node$i's QEMU exited"; return 1; fi
      done
      sleep 2
    done
    say "$what"
  }

  ip netns add "$ns" || return 1
  inns ip link set lo up
  inns ip link add br0 type bridge
  inns ip addr add "$NET.1/24" dev br0
  inns ip link set br0 up
  local i
  for i in 1 2 3; do
    inns ip tuntap add dev "tap$i" mode tap
    inns ip link set "tap$i" master br0 up
    local role=agent; [ "$i" = 1 ] && role=both
    local d; d=$(mktemp -d)
    sed -e "s/@N@/$i/g" -e "s/@ROLE@/$role/" -e "s/@TOKEN@/$TOKEN/" -e "s/@ADMIN@/$ADMIN/" -e "s|@SSH_KEY@|$(cat "$key.pub")|" "$here/cases/050_cluster_3vm/user-data.in" > "$d/user-data"
    printf 'instance-id: node%s\nlocal-hostname: node%s\n' "$i" "$i" > "$d/meta-data"
    xorriso -as mkisofs -quiet -V cidata -J -r -o "$o/cidata$i.iso" "$d" 2>/dev/null
    rm -rf "$d"
    truncate -s 1G "$o/state$i.img"
    mkfs.ext4 -q -F -L ROS_STATE "$o/state$i.img"
  done
  # diag: what each node's engines hold, the logs of containers that exited
  # and of the cluster service (kept as nodeN-diag.txt when a step fails)
  diag() {
    local i
    for i in 1 2 3; do
      [ -n "${pid[$i]:-}" ] || continue
      vm "$i" \
        'sudo docker ps -a; for c in $(sudo docker ps -aq -f status=exited) $(sudo docker ps -q -f name=-lb-); do echo "== logs of $c"; sudo docker logs --tail 40 $c 2>&1; done; echo "== cluster service"; sudo ros service logs cluster 2>&1 | tail -60; echo "== iptables nat"; sudo docker -H unix:///var/run/system-docker.sock exec cluster iptables -t nat -S 2>&1 | head -40' \
        > "$o/node$i-diag.txt" 2>&1
      say "node$i diagnostics: $o/node$i-diag.txt"
    done
  }
  boot() { # boot I MEM: one vCPU each (TCG on 2 cores)
    local i=$1 mem=$2
    boots[$i]=$(( ${boots[$i]:-0} + 1 ))
    rm -f "$o/qemu$i.pid"
    inns qemu-system-x86_64 -pidfile "$o/qemu$i.pid" "${accel[@]}" -m "$mem" -smp 1 -display none -no-reboot \
      -monitor none -serial "file:$o/console-node$i.${boots[$i]}.log" \
      -netdev "tap,id=n0,ifname=tap$i,script=no,downscript=no" \
      -device "virtio-net-pci,netdev=n0,mac=52:54:00:77:00:0$i" \
      -drive "file=$o/state$i.img,if=virtio,format=raw" \
      -drive "file=$o/cidata$i.iso,if=virtio,format=raw,readonly=on" \
      -cdrom "$top/dist/ros.iso" -boot d &
    pid[$i]=$!
  }
  # stop_vm I: QEMU itself (`ip netns exec` forks: its pid is not QEMU's)
  stop_vm() {
    local q; q=$(cat "$qdir/qemu$1.pid" 2>/dev/null)
    [ -n "$q" ] && kill "$q" 2>/dev/null
    wait "${pid[$1]}" 2>/dev/null
    pid[$1]=""
  }
  boot 1 1024; boot 2 768; boot 3 768
  say "3 VMs started (TCG 1 vCPU each)"

  # The operator's step: the cluster CA from the server node itself; the
  # pin (SHA-256 of its DER) is what `ros compose --ca-pin` checks.
  get_ca() { vm 1 sudo cat /var/lib/ros/cluster/ca.pem > "$o/ca.pem" && grep -q "BEGIN CERTIFICATE" "$o/ca.pem"; }
  wait_until 480 "node1's cluster CA read over ssh" get_ca || { diag; return 1; }
  local pin; pin=$(sed /-----/d "$o/ca.pem" | base64 -d | sha256sum | cut -c1-64)
  say "cluster CA pin $pin"
  # plain HTTP from another machine is refused with a message saying so
  # (the CA is written before the server listens: wait for an answer)
  plain_refused() { inns curl -sS --max-time 10 "http://$NET.11:8080/v1/projects" > "$o/plain.txt" 2>&1; grep -qi https "$o/plain.txt"; }
  wait_until 240 "plain HTTP from another machine refused" plain_refused \
    || { say "plain HTTP was not refused: $(cat "$o/plain.txt")"; diag; return 1; }
  say "the refusal: $(head -c 160 "$o/plain.txt")"
  active_hosts() { [ "$(api '/v1/projects/1a5/hosts?agentState=active' | json 'len(d["data"])')" = 3 ]; }
  wait_until 480 "3 hosts active" active_hosts || return 1
  fig "QEMU start -> 3 hosts active"
  local node3_id
  node3_id=$(api '/v1/projects/1a5/hosts?name=node3' | json 'd["data"][0]["id"]')
  # On the node itself: `ros cluster status` says it is connected.
  vm 2 sudo ros cluster status > "$o/node2-status.txt" 2>&1
  say "node2: $(tr '\n' ';' < "$o/node2-status.txt")"
  grep -q "agent:      connected" "$o/node2-status.txt" || { say "node2's ros cluster status is not connected"; return 1; }

  mkdir -p "$o/stack"
  cp "$here/cases/050_cluster_3vm/docker-compose.yml" "$here/cases/050_cluster_3vm/rancher-compose.yml" "$o/stack/"
  (cd "$o/stack" && inns env ROS_ACCESS_KEY=admin ROS_SECRET_KEY="$ADMIN" ROS_CA_PIN="$pin" "$rosbin" compose --url "https://$NET.11:8080" -p demo up -d) >> "$log" 2>&1 \
    || { say "ros compose up failed"; return 1; }
  # web: 3 running and healthy containers on 3 different hosts
  web_spread() {
    api '/v1/projects/1a5/containers?state=running&healthState=healthy' | python3 -c '
import json,sys
d=[c for c in json.load(sys.stdin)["data"] if c["name"].startswith("demo-web-") or c["name"].startswith("demo_web_")]
hosts={c.get("hostId") for c in d}
sys.exit(0 if len(d)==3 and len(hosts)==int(sys.argv[1]) else 1)' "$1"
  }
  wait_until 300 "web: 3 healthy containers on 3 hosts" web_spread 3 || { diag; return 1; }
  fig "QEMU start -> stack healthy"

  # 30 requests through node2's port 80: every web container answers
  rotation() {
    local n names
    names=$(for n in $(seq 1 30); do inns curl -fsS --max-time 5 "http://$NET.12/" || echo FAILED; done)
    echo "$names" > "$o/rotation.txt"
    ! grep -q FAILED "$o/rotation.txt" && [ "$(sort -u "$o/rotation.txt" | wc -l)" = 3 ] \
      && [ "$(sort "$o/rotation.txt" | uniq -c | awk '{print $1}' | sort -u | tr '\n' ' ')" = "10 " ]
  }
  wait_until 120 "30 requests through node2:80 answered 10 times by each of 3 containers" rotation \
    || { say "answers: $(sort "$o/rotation.txt" | uniq -c | tr '\n' ' ')"; diag; return 1; }
  fig "QEMU start -> LB answering round robin"

  # Figures: guest memory and the RSS of `ros cluster up` (server and agent
  # in one process on node1, the agent alone on node2), the cluster idle.
  local i
  for i in 1 2; do
    vm "$i" free -m | awk -v n="$i" '/Mem:/ {printf "050_cluster_3vm node%s guest memory used %s MB of %s\n", n, $3, $2}' | tee -a "$figs"
    vm "$i" 'for d in /proc/[0-9]*; do c=$(tr "\0" " " < $d/cmdline 2>/dev/null); case "$c" in "ros cluster up"*) echo "$(grep VmRSS $d/status | tr -s " \t" " ") $c" ;; esac; done' \
      | sed "s/^/050_cluster_3vm node$i /" | tee -a "$figs"
  done

  # The managed network across hosts (issue 12): from node1's web
  # container, node2's web container by its 10.42 address (VXLAN between
  # the VMs) and the service by its name (the agent's DNS).
  local node2_id ip2
  node2_id=$(api '/v1/projects/1a5/hosts?name=node2' | json 'd["data"][0]["id"]')
  ip2=$(api "/v1/projects/1a5/containers?state=running&hostId=$node2_id" | python3 -c '
import json,sys
d=[c for c in json.load(sys.stdin)["data"] if c["name"].startswith("demo-web-")]
print(d[0]["primaryIpAddress"] if d else "")')
  case "$ip2" in 10.42.*) ;; *) say "node2's web container has no 10.42 address: '$ip2'"; diag; return 1 ;; esac
  cross() {
    vm 1 "c=\$(sudo docker ps -q -f name=r-demo-web- | head -1); \
      sudo docker exec \$c timeout 5 wget -qO- http://$ip2:8080/ && sudo docker exec \$c timeout 5 wget -qO- http://web:8080/" > "$o/cross.txt" 2>&1 \
      && [ "$(grep -c . "$o/cross.txt")" = 2 ]
  }
  wait_until 60 "node1's web reached node2's web ($ip2) over the overlay, and web by name" cross \
    || { say "cross-host: $(cat "$o/cross.txt")"; diag; return 1; }
  say "cross-host answers: $(tr '\n' ' ' < "$o/cross.txt")"

  # node3 lost: kill its QEMU
  local lost=$SECONDS
  stop_vm 3
  say "node3 killed"
  host_state() { [ "$(api "/v1/projects/1a5/hosts/$node3_id" | json 'd["agentState"]')" = "$1" ]; }
  wait_until 90 "node3 disconnected" host_state disconnected || return 1
  on_two() {
    api '/v1/projects/1a5/containers?state=running&healthState=healthy' | python3 -c '
import json,sys
d=[c for c in json.load(sys.stdin)["data"] if c["name"].startswith("demo-web-") and c.get("hostId")!=sys.argv[1]]
sys.exit(0 if len(d)==3 else 1)' "$node3_id"
  }
  wait_until 180 "3 healthy web containers on node1/node2" on_two || return 1
  printf '050_cluster_3vm %-44s %6d s\n' "node lost -> replacement healthy" "$((SECONDS - lost))" | tee -a "$figs"
  still_answers() { local n; for n in $(seq 1 6); do inns curl -fsS --max-time 5 "http://$NET.12/" >/dev/null || return 1; done; }
  wait_until 60 "requests still answered through node2:80" still_answers || return 1

  # node3 back on its state disk: the same host, its stale container gone
  boot 3 768
  wait_until 480 "node3 ($node3_id) active again" host_state active || return 1
  fig "QEMU start -> node3 back"
  stale_gone() {
    api "/v1/projects/1a5/containers?hostId=$node3_id" | python3 -c '
import json,sys
d=[c for c in json.load(sys.stdin)["data"] if c["name"].startswith("demo-web-") and c["state"] not in ("removed","purged")]
sys.exit(0 if not d else 1)'
  }
  wait_until 120 "node3's stale web container removed" stale_gone || return 1
  [ "$(api '/v1/projects/1a5/hosts' | json 'len(d["data"])')" = 3 ] || { say "a host was duplicated"; return 1; }
  say "3 hosts, no duplicate"
  fig "case total"
  return 0
}
