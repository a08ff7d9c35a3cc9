#!/usr/bin/env bash
# Orchestrator figures (needs root, dockerd, busybox-static): 0 -> 100
# containers vs Docker swarm mode on the same engines, a 10-container
# in-service upgrade at batch size 2, 1,000 containers (server RSS, start
# rate). Release build unless PROFILE=dev. Prints BENCH lines; the full
# output is in target/bench-services.log.
set -euo pipefail
cd "$(dirname "$0")/.."
log=target/bench-services.log
mkdir -p target
if ! cargo test --profile "${PROFILE:-release}" --test bench_services -- --ignored --nocapture >"$log" 2>&1; then
  grep '^BENCH' "$log" || true
  echo "bench-services: failed; see $log" >&2
  exit 1
fi
grep '^BENCH' "$log"
