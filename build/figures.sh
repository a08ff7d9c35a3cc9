#!/usr/bin/env bash
# The figures: artifact sizes, then boot milestones (seconds from QEMU
# start) and guest memory from the last qemu-tests run (run it first, or
# pass --run to boot 010_iso_boot now).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== artifact sizes"
bash build/sizes.sh
if [ "${1:-}" = --run ] || [ ! -s qemu-tests/out/figures.txt ]; then
  bash qemu-tests/run.sh 010_iso_boot >/dev/null || true
fi
echo; echo "== boot milestones (s from QEMU process start) and guest memory"
cat qemu-tests/out/figures.txt
