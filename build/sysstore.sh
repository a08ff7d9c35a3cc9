#!/usr/bin/env bash
# system-docker's image store, built now instead of at every first boot:
#   build/sysstore.sh ARCHIVE OUT
# A real dockerd (Debian's docker.io, the same package the image ships)
# loads ARCHIVE into an empty data root; OUT gets that data root's `image/`
# and `overlay2/` trees. PID 1 links the layers from the read-only store
# into the node's data root before it starts system-dockerd
# (src/system/prebuilt.rs): no `docker load` at boot.
# Layer directories and their short links are renamed after the layer's
# chain id, so the same layer has the same path in every build (a node
# booting a newer image keeps its containers' lower directories valid).
# Needs root (dockerd); exits non-zero when it cannot build the store, and
# build/initrd.sh then ships the archive for a boot-time load instead.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
archive=$1 out=$2
[ "$(id -u)" = 0 ] || { log "sysstore: not root, no dockerd"; exit 1; }
command -v dockerd >/dev/null || { log "sysstore: no dockerd"; exit 1; }
w=$(mktemp -d "$ROS_WORK/sysstore.XXXXXX")
sock=$w/docker.sock
dockerd --host "unix://$sock" --data-root "$w/data" --exec-root "$w/exec" \
  --pidfile "$w/docker.pid" --bridge=none --iptables=false --ip-masq=false \
  --storage-driver=overlay2 >"$w/dockerd.log" 2>&1 &
dpid=$!
stop() {
  if kill -0 "$dpid" 2>/dev/null; then kill -TERM "$dpid"; wait "$dpid" 2>/dev/null || true; fi
}
trap 'stop; rm -rf "$w"' EXIT
up=""
for _ in $(seq 1 120); do
  if docker -H "unix://$sock" version >/dev/null 2>&1; then up=1; break; fi
  kill -0 "$dpid" 2>/dev/null || break
  sleep 0.5
done
[ -n "$up" ] || { log "sysstore: dockerd did not start:"; tail -5 "$w/dockerd.log" >&2; exit 1; }
docker -H "unix://$sock" load -q -i "$archive" >/dev/null
stop

python3 - "$w/data" <<'PY'
import hashlib, os, sys
root = sys.argv[1]
ov = os.path.join(root, "overlay2")
ldb = os.path.join(root, "image/overlay2/layerdb/sha256")
short = {}
for chain in os.listdir(ldb):
    cid_path = os.path.join(ldb, chain, "cache-id")
    old = open(cid_path).read().strip()
    new = chain
    os.rename(os.path.join(ov, old), os.path.join(ov, new))
    open(cid_path, "w").write(new)
    link = os.path.join(ov, new, "link")
    old_short = open(link).read().strip()
    new_short = hashlib.sha256(new.encode()).hexdigest()[:26].upper()
    short[old_short] = new_short
    os.remove(os.path.join(ov, "l", old_short))
    os.symlink("../%s/diff" % new, os.path.join(ov, "l", new_short))
    open(link, "w").write(new_short)
for d in os.listdir(ov):
    lower = os.path.join(ov, d, "lower")
    if os.path.exists(lower):
        parts = open(lower).read().strip().split(":")
        open(lower, "w").write(":".join("l/" + short[p[2:]] for p in parts))
PY

rm -rf "$out"; mkdir -p "$out"
cp -a "$w/data/image" "$w/data/overlay2" "$out/"
sha256sum "$archive" | cut -c1-64 > "$out/store-id"
log "sysstore: $(ls "$out/overlay2" | grep -vc '^l$') layers, $(du -sh "$out" | cut -f1)"
