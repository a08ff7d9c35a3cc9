#!/usr/bin/env bash
# Orchestrator figures (needs root, dockerd, busybox-static): 0 -> 100
# containers vs Docker swarm mode on the same engines, a 10-container
# in-service upgrade at batch size 2, server RSS. Prints BENCH lines.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test ${PROFILE:+--profile $PROFILE} --test bench_services -- --ignored --nocapture 2>&1 | grep '^BENCH'
