#!/usr/bin/env bash
# Cluster server benchmarks (figures, never pass/fail):
#   cold start to first answered request, RSS idle, RSS with 100 hosts and
#   10,000 container records, p50/p99 latency under wrk for
#   GET /v1/projects/1a5/hosts and for agent container-state reports.
# Needs: a release build (built here), curl, wrk, python3 (seeding).
#   bash build/bench-cluster.sh [PORT]
set -euo pipefail
cd "$(dirname "$0")/.."
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores (figures scale with it)"

port="${1:-18480}"
url="http://127.0.0.1:$port"
command -v wrk >/dev/null || { echo "bench: wrk missing (build/deps.sh installs it)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "bench: python3 missing (used to seed records)" >&2; exit 1; }
cargo build --release -q
ros="$PWD/target/release/ros"
root="$(mktemp -d)"
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$root"; }
trap cleanup EXIT

rss() { awk '/VmRSS/ {printf "%.1f MB", $2/1024}' "/proc/$pid/status"; }

t0=$(date +%s%N)
"$ros" --root "$root" cluster server --listen "127.0.0.1:$port" 2>"$root/server.log" &
pid=$!
until curl -sf "$url/v1/projects/1a5" >/dev/null; do sleep 0.002; done
t1=$(date +%s%N)
echo "cold start to first answered request (empty store): $(( (t1 - t0) / 1000000 )) ms"
sleep 1
echo "RSS idle (empty store): $(rss)"

python3 - "$url" "$root" <<'PY'
import json, sys, urllib.request
url, root = sys.argv[1], sys.argv[2]
def call(path, body, auth=None):
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    if auth:
        req.add_header("Authorization", auth)
    with urllib.request.urlopen(req) as r:
        return json.load(r)
tok = call("/v1/projects/1a5/registrationtokens", {})["token"]
hosts = []
for i in range(100):
    r = call("/v1/agent/register", {"token": tok, "key": "benchhostkey%04d" % i + "x" * 8,
             "facts": {"hostname": "host%03d" % i, "agentIp": "10.0.%d.%d" % (i // 250, i % 250 + 1),
                       "cpuCount": 4, "memoryMb": 8192, "labels": {"rack": str(i % 4)}}})
    hosts.append(r)
for n in range(10000):
    h = hosts[n % 100]
    call("/v1/projects/1a5/containers", {"name": "c%05d" % n, "imageUuid": "docker:busybox",
         "command": ["sleep", "1d"], "requestedHostId": h["hostId"]})
import base64
h = hosts[0]
auth = "Basic " + base64.b64encode((h["accessKey"] + ":" + h["secretKey"]).encode()).decode()
inst = json.load(urllib.request.urlopen(urllib.request.Request(url + "/v1/projects/1a5/containers?hostId=%s&limit=1" % h["hostId"])))["data"][0]["id"]
open(root + "/agent.env", "w").write("AGENT_AUTH='%s'\nINSTANCE=%s\n" % (auth, inst))
PY
# shellcheck disable=SC1091
. "$root/agent.env"
sleep 2
echo "RSS with 100 hosts and 10,000 container records: $(rss)"
echo "store size: $(du -sh "$root/var/lib/ros/cluster" | cut -f1)"

cat >"$root/report.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "$AGENT_AUTH"
local states = {"running", "stopped"}
local n = 0
request = function()
  n = n + 1
  local body = '{"reports":[{"instanceId":"$INSTANCE","state":"' .. states[n % 2 + 1] .. '"}],"waitMs":0}'
  return wrk.format(nil, "/v1/agent/sync", nil, body)
end
LUA

lat() { awk '/^ +50%/ {p50=$2} /^ +99%/ {p99=$2} /Requests\/sec/ {rps=$2} END {printf "p50 %s  p99 %s  (%s req/s)\n", p50, p99, rps}'; }
printf 'GET /v1/projects/1a5/hosts (100 hosts), wrk -t1 -c1 -d5s: '
wrk -t1 -c1 -d5s --latency "$url/v1/projects/1a5/hosts" | lat
printf 'GET /v1/projects/1a5/hosts (100 hosts), wrk -t2 -c16 -d10s: '
wrk -t2 -c16 -d10s --latency "$url/v1/projects/1a5/hosts" | lat
printf 'agent state reports POST /v1/agent/sync, wrk -t1 -c1 -d5s: '
wrk -t1 -c1 -d5s --latency -s "$root/report.lua" "$url" | lat
printf 'agent state reports POST /v1/agent/sync, wrk -t2 -c16 -d10s: '
wrk -t2 -c16 -d10s --latency -s "$root/report.lua" "$url" | lat
echo "RSS after load: $(rss)"

kill "$pid"; wait "$pid" 2>/dev/null || true
t0=$(date +%s%N)
"$ros" --root "$root" cluster server --listen "127.0.0.1:$port" 2>>"$root/server.log" &
pid=$!
until curl -sf "$url/v1/projects/1a5" >/dev/null; do sleep 0.002; done
t1=$(date +%s%N)
echo "restart to first answered request (100 hosts, 10,000 containers): $(( (t1 - t0) / 1000000 )) ms"
