#!/usr/bin/env bash
# The main job. Until the bootable image exists this builds `ros` and runs it
# against the sample cloud-config in a scratch root: validate, merge, and
# show the merged result.
set -euo pipefail
cd "$(dirname "$0")/.."

bash build/deps.sh
cargo build --release
ros=target/release/ros
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT

echo "== ros config validate -i examples/cloud-config.yml"
"$ros" --root "$root" config validate -i examples/cloud-config.yml && echo ok
echo "== ros config merge -i examples/cloud-config.yml"
"$ros" --root "$root" config merge -i examples/cloud-config.yml
echo "== ros config get ros.network"
"$ros" --root "$root" config get ros.network
echo "== ros config export"
"$ros" --root "$root" config export
