#!/usr/bin/env bash
# The figures, each beside its floor measured in the same run:
#   sizes     build/sizes.sh (ISO, initrd, store, images, ros by section)
#   floor     dist/vmlinuz + a busybox-init initramfs built here, booted under
#             the same QEMU/accelerator: time to its PID 1 and to its shell
#   node      qemu-tests case 045_small_512 (ISO, 512 MB): PID 1, login:,
#             user docker ready, shutdown (SHUTDOWN-START → QEMU exit),
#             guest memory and idle RSS per process
#   build/figures.sh [CASE]     (default 045_small_512; needs build/build.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
source build/lib.sh
case_=${1:-045_small_512}
echo "== artifact sizes"
bash build/sizes.sh

# the floor: Debian's kernel + busybox as init, nothing else
fl=$(mktemp -d); trap 'rm -rf "$fl"' EXIT
mkdir -p "$fl/root/bin" "$fl/root/proc"
cp "$SYSROOT/bin/busybox" "$fl/root/bin/busybox"
ln -s busybox "$fl/root/bin/sh"
cat > "$fl/root/init" <<'I'
#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
echo "FLOOR pid1 uptime $(/bin/busybox cut -d' ' -f1 /proc/uptime)"
echo "FLOOR shell"
/bin/busybox poweroff -f
I
chmod 755 "$fl/root/init"
(cd "$fl/root" && find . | cpio -o -H newc --quiet -R 0:0) | gzip -1 > "$fl/floor.img"
accel=(-accel tcg)
[ -n "${ROS_NO_KVM:-}" ] || { [ -w /dev/kvm ] && timeout 20 qemu-system-x86_64 -enable-kvm -m 256 -display none -no-reboot \
  -kernel dist/vmlinuz -append "panic=-1 console=ttyS0" -serial none >/dev/null 2>&1 && accel=(-enable-kvm -cpu host); } || true
t0=$(date +%s.%N)
qemu-system-x86_64 "${accel[@]}" -m 512 -smp 2 -display none -no-reboot -monitor none -serial "file:$fl/console.log" \
  -kernel dist/vmlinuz -initrd "$fl/floor.img" -append "console=ttyS0,115200n8 quiet panic=-1" &
qpid=$!
floor_pid1="" floor_shell=""
while kill -0 "$qpid" 2>/dev/null; do
  now=$(date +%s.%N)
  [ -z "$floor_pid1" ] && grep -aq "FLOOR pid1" "$fl/console.log" && floor_pid1=$(echo "$now $t0" | awk '{printf "%.1f", $1-$2}')
  [ -z "$floor_shell" ] && grep -aq "FLOOR shell" "$fl/console.log" && floor_shell=$(echo "$now $t0" | awk '{printf "%.1f", $1-$2}')
  sleep 0.2
done
floor_exit=$(echo "$(date +%s.%N) $t0" | awk '{printf "%.1f", $1-$2}')
echo; echo "== floor (bare kernel + busybox init, ${accel[*]}, 512 MB)"
echo "floor PID 1 ${floor_pid1:-?} s, shell ${floor_shell:-?} s, qemu exit $floor_exit s ($(grep -a 'FLOOR pid1' "$fl/console.log" | tr -d '\r'))"

echo; echo "== node: qemu-tests $case_"
bash qemu-tests/run.sh "$case_" | grep -v '^  boot' || true
f=qemu-tests/out/figures.txt
cat "$f"
get() { awk -v m="$1" 'index($0, m) {for (i = NF; i > 0; i--) if ($i ~ /^[0-9.]+$/) {print $i; exit}}' "$f" | head -1; }
pid1=$(get "ros init: ros") login=$(get "login:") ready=$(get "MILESTONE user-docker-ready")
sd=$(get "SHUTDOWN-START") qexit=$(get "qemu exited")
ratio() { [ -n "$1" ] && [ -n "$2" ] && awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}' || echo "?"; }
echo; echo "== against the floor (goal)"
printf 'PID 1            %6s s  %5sx floor PID 1 (<= 1.5x)\n' "${pid1:-?}" "$(ratio "$pid1" "$floor_pid1")"
printf 'login:           %6s s  %5sx floor (<= 3x)\n' "${login:-?}" "$(ratio "$login" "$floor_shell")"
printf 'user docker      %6s s  %5sx floor (<= 4x)\n' "${ready:-?}" "$(ratio "$ready" "$floor_shell")"
if [ -n "$sd" ] && [ -n "$qexit" ]; then
  printf 'shutdown         %6s s  (SHUTDOWN-START to QEMU exit; <= 5 s)\n' "$(awk -v a="$qexit" -v b="$sd" 'BEGIN{printf "%.1f", a-b}')"
fi
grep -a 'FIGURE mem' "$f" | sed 's/^/memory: /' || true
