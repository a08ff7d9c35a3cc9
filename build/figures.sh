#!/usr/bin/env bash
# The figures, each beside its floor measured in the same run:
#   sizes     build/sizes.sh (ISO, initrd, store, images, ros by section)
#   floor     dist/vmlinuz + a busybox-init initramfs built here, booted under
#             the same QEMU/accelerator: time to its PID 1 and to its shell
#   node      qemu-tests case 045_small_512 (ISO, 512 MB): PID 1, login:,
#             user docker ready (the engine's first /_ping answer, as
#             sysinit logs it; beside it the first `docker info` of the
#             case's check service), shutdown (SHUTDOWN-START → QEMU exit),
#             guest memory and idle RSS per process
#   second    qemu-tests case 046_second_boot (-kernel, 512 MB, state disk):
#             the same node's first boot (autoformat) and second boot
#   rounds    ROUNDS (default 3) more rounds of the floor and 046 in turn,
#             each against its own floor, and their median
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
/bin/busybox sleep 1  # let the watcher see the markers before QEMU exits
/bin/busybox poweroff -f
I
chmod 755 "$fl/root/init"
(cd "$fl/root" && find . | cpio -o -H newc --quiet -R 0:0) | gzip -1 > "$fl/floor.img"
accel=(-accel tcg)
[ -n "${ROS_NO_KVM:-}" ] || { [ -w /dev/kvm ] && timeout 20 qemu-system-x86_64 -enable-kvm -m 256 -display none -no-reboot \
  -kernel dist/vmlinuz -append "panic=-1 console=ttyS0" -serial none >/dev/null 2>&1 && accel=(-enable-kvm -cpu host); } || true
# the same machine as qemu-tests/run.sh's: with an entropy source
accel+=(-device virtio-rng-pci)
# boot_floor LOG QEMU-ARGS...: time to the floor's PID 1 and shell (globals)
boot_floor() {
  local log=$1; shift
  : > "$log"
  local t0; t0=$(date +%s.%N)
  qemu-system-x86_64 "${accel[@]}" -m 512 -smp 2 -display none -no-reboot -monitor none -serial "file:$log" "$@" &
  local qpid=$!
  floor_pid1="" floor_shell=""
  while kill -0 "$qpid" 2>/dev/null; do
    local now; now=$(date +%s.%N)
    [ -z "$floor_pid1" ] && grep -aq "FLOOR pid1" "$log" && floor_pid1=$(echo "$now $t0" | awk '{printf "%.1f", $1-$2}')
    [ -z "$floor_shell" ] && grep -aq "FLOOR shell" "$log" && floor_shell=$(echo "$now $t0" | awk '{printf "%.1f", $1-$2}')
    sleep 0.2
  done
  floor_exit=$(echo "$(date +%s.%N) $t0" | awk '{printf "%.1f", $1-$2}')
}
boot_floor "$fl/console.log" -kernel dist/vmlinuz -initrd "$fl/floor.img" -append "console=ttyS0,115200n8 quiet panic=-1"
echo; echo "== floor (bare kernel + busybox init, ${accel[*]}, 512 MB, qemu -kernel)"
echo "floor PID 1 ${floor_pid1:-?} s, shell ${floor_shell:-?} s, qemu exit $floor_exit s ($(grep -a 'FLOOR pid1' "$fl/console.log" | tr -d '\r'))"
k_pid1=$floor_pid1 k_shell=$floor_shell

# The same floor booted the way the node boots: an ISO through GRUB
# (build/iso.sh's menu and modules), so firmware and boot loader count for
# both sides alike.
mkdir -p "$fl/iso/boot/grub"
cp dist/vmlinuz "$fl/iso/boot/vmlinuz"; cp "$fl/floor.img" "$fl/iso/boot/initrd"
printf 'serial --unit=0 --speed=115200\nterminal_input serial console\nterminal_output serial console\nset timeout=0\nset default=0\nmenuentry "floor" {\n  linux /boot/vmlinuz console=ttyS0,115200n8 quiet panic=-1\n  initrd /boot/initrd\n}\n' > "$fl/iso/boot/grub/grub.cfg"
g_pid1="" g_shell=""
if grub-mkrescue --install-modules="linux normal iso9660 serial terminal echo test configfile" --locales= --fonts= --themes= \
    -o "$fl/floor.iso" "$fl/iso" -- -volid FLOOR >/dev/null 2>&1; then
  boot_floor "$fl/console-iso.log" -cdrom "$fl/floor.iso" -boot d
  echo "floor via ISO/GRUB: PID 1 ${floor_pid1:-?} s, shell ${floor_shell:-?} s, qemu exit $floor_exit s"
  g_pid1=$floor_pid1 g_shell=$floor_shell
else
  echo "floor via ISO/GRUB: grub-mkrescue failed"
fi
floor_pid1=$k_pid1 floor_shell=$k_shell

echo; echo "== node: qemu-tests $case_"
bash qemu-tests/run.sh "$case_" | grep -E '^(PASS|FAIL)|took' || true
f=qemu-tests/out/figures.txt
cat "$f"
get() { awk -v m="$1" 'index($0, m) {for (i = NF; i > 0; i--) if ($i ~ /^[0-9.]+$/) {print $i; exit}}' "$f" | head -1; }
pid1=$(get "ros init: ros") login=$(get "login:") ready=$(get "ready service=docker")
client=$(get "MILESTONE user-docker-ready")
sd=$(get "SHUTDOWN-START") qexit=$(get "qemu exited")
ratio() { [ -n "$1" ] && [ -n "$2" ] && awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}' || echo "?"; }
echo; echo "== against the floor (goal)"
printf 'PID 1            %6s s  %5sx floor PID 1 (<= 1.5x)\n' "${pid1:-?}" "$(ratio "$pid1" "$floor_pid1")"
printf 'login:           %6s s  %5sx floor (<= 3x)\n' "${login:-?}" "$(ratio "$login" "$floor_shell")"
printf 'user docker      %6s s  %5sx floor (<= 4x)\n' "${ready:-?}" "$(ratio "$ready" "$floor_shell")"
printf 'first docker info %5s s  %5sx floor\n' "${client:-?}" "$(ratio "$client" "$floor_shell")"
if [ -n "$g_shell" ]; then
  echo "against the floor booted the same way (ISO via GRUB: PID 1 $g_pid1 s, shell $g_shell s)"
  printf 'PID 1            %6s s  %5sx\n' "${pid1:-?}" "$(ratio "$pid1" "$g_pid1")"
  printf 'login:           %6s s  %5sx\n' "${login:-?}" "$(ratio "$login" "$g_shell")"
  printf 'user docker      %6s s  %5sx\n' "${ready:-?}" "$(ratio "$ready" "$g_shell")"
  printf 'first docker info %5s s  %5sx\n' "${client:-?}" "$(ratio "$client" "$g_shell")"
fi
echo "(user docker: the engine's first /_ping answer, sysinit's \"ready service=docker\";"
echo " first docker info: the case's check service, started once the engine answers)"
if [ -n "$sd" ] && [ -n "$qexit" ]; then
  printf 'shutdown         %6s s  (SHUTDOWN-START to QEMU exit; <= 5 s)\n' "$(awk -v a="$qexit" -v b="$sd" 'BEGIN{printf "%.1f", a-b}')"
fi
grep -a 'FIGURE mem' "$f" | sed 's/^/memory: /' || true
# The goal's figure: memory used plus everything held in RAM-backed
# filesystems (shared: the tmpfs root, /run, and whatever the initramfs
# still pins), so nothing kept in RAM escapes it. Goal <= 160 MB.
grep -a 'FIGURE mem' "$f" | head -1 | sed -n 's/.*used_mb=\([0-9]*\).*shared_mb=\([0-9]*\).*/\1 \2/p' |
  awk '{printf "memory used + shared (tmpfs, initramfs)  %d MB = %d + %d  (<= 160 MB)\n", $1 + $2, $1, $2}'
grep -a 'FIGURE tmpfs_root_kb' "$f" | head -1 | sed 's/^/memory: /' || true

# Second boot on a state disk (issue 16: at least as fast as the first).
# Last: it replaces qemu-tests/out/figures.txt, read above.
echo; echo "== second boot on a state disk: qemu-tests 046_second_boot (-kernel, 512 MB)"
ROS_FIGURES=1 bash qemu-tests/run.sh 046_second_boot | grep -E '^(PASS|FAIL)|took' || true
f=qemu-tests/out/figures.txt
for m in "ros init: ros" "system-docker answering" "login:" "ready service=docker" "MILESTONE user-docker-ready"; do
  b1=$(awk -v m="$m" 'index($0, "boot1 " m) {print $NF == "s" ? $(NF-1) : $NF; exit}' "$f")
  b2=$(awk -v m="$m" 'index($0, "boot2 " m) {print $NF == "s" ? $(NF-1) : $NF; exit}' "$f")
  printf '%-28s boot 1 %6s s   boot 2 %6s s   %s\n' "$m" "${b1:-?}" "${b2:-?}" \
    "$( [ -n "$b1" ] && [ -n "$b2" ] && awk -v a="$b2" -v b="$b1" 'BEGIN{printf "(%+.1f s)", a-b}')"
done
# 046 boots the node the way the floor was booted (qemu -kernel, 512 MB,
# same accelerator): its first boot against that floor, like for like.
b1() { awk -v m="$1" 'index($0, "boot1 " m) {print $NF == "s" ? $(NF-1) : $NF; exit}' "$f"; }
k1=$(b1 "ros init: ros") k2=$(b1 "login:") k3=$(b1 "ready service=docker") k4=$(b1 "MILESTONE user-docker-ready")
echo "046 boot 1 against the floor booted the same way (qemu -kernel: PID 1 $k_pid1 s, shell $k_shell s)"
printf 'PID 1            %6s s  %5sx\n' "${k1:-?}" "$(ratio "$k1" "$k_pid1")"
printf 'login:           %6s s  %5sx\n' "${k2:-?}" "$(ratio "$k2" "$k_shell")"
printf 'user docker      %6s s  %5sx\n' "${k3:-?}" "$(ratio "$k3" "$k_shell")"
printf 'first docker info %5s s  %5sx\n' "${k4:-?}" "$(ratio "$k4" "$k_shell")"

# The host's noise (other guests on this machine's CPUs) moves a single
# boot by seconds, the floor's as much as the node's, and not at the same
# moments: ROUNDS (default 3) more rounds of the floor (-kernel) and 046
# booted in turn, each round's node against that round's floor, and the
# median of the rounds.
rounds=${ROUNDS:-3}
echo; echo "== $rounds rounds in turn: floor (-kernel), then 046 (-kernel, 512 MB, boot 1 / boot 2)"
r_pid1=() r_login=() r_ready=() r_login2=() r_ready2=()
for r in $(seq "$rounds"); do
  boot_floor "$fl/console-r$r.log" -kernel dist/vmlinuz -initrd "$fl/floor.img" -append "console=ttyS0,115200n8 quiet panic=-1"
  fp=$floor_pid1 fs=$floor_shell
  ROS_FIGURES=1 bash qemu-tests/run.sh 046_second_boot > /dev/null 2>&1 || { echo "round $r: 046 FAILED"; continue; }
  f=qemu-tests/out/figures.txt
  b2() { awk -v m="$1" 'index($0, "boot2 " m) {print $NF == "s" ? $(NF-1) : $NF; exit}' "$f"; }
  p=$(b1 "ros init: ros") l=$(b1 "login:") d=$(b1 "ready service=docker") l2=$(b2 "login:") d2=$(b2 "ready service=docker")
  r_pid1+=("$(ratio "$p" "$fp")") r_login+=("$(ratio "$l" "$fs")") r_ready+=("$(ratio "$d" "$fs")")
  r_login2+=("$(ratio "$l2" "$fs")") r_ready2+=("$(ratio "$d2" "$fs")")
  printf 'round %s: floor %s s | boot 1: PID 1 %s s %sx, login: %s s %sx, user docker %s s %sx | boot 2: login: %sx, user docker %sx\n' \
    "$r" "$fs" "$p" "${r_pid1[-1]}" "$l" "${r_login[-1]}" "$d" "${r_ready[-1]}" "${r_login2[-1]}" "${r_ready2[-1]}"
done
median() { printf '%s\n' "$@" | grep -E '^[0-9.]+$' | sort -n | awk '{v[NR] = $1} END {if (NR) printf "%.2f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; else printf "?"}'; }
echo "median of the rounds, boot 1: PID 1 $(median "${r_pid1[@]}")x (<= 1.5x), login: $(median "${r_login[@]}")x (<= 3x), user docker $(median "${r_ready[@]}")x (<= 4x)"
echo "median of the rounds, boot 2: login: $(median "${r_login2[@]}")x, user docker $(median "${r_ready2[@]}")x"
