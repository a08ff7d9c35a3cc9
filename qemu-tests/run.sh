#!/usr/bin/env bash
# Boot tests under QEMU: one folder per case in qemu-tests/cases/. Each
# case has case.sh (how to boot, which console markers to expect/reject),
# user-data (NoCloud, on a `cidata` drive with check.sh and guest-lib.sh)
# and check.sh (the guest checks itself and prints CHECK lines).
#   qemu-tests/run.sh [CASE...]          (default: all)
# Needs dist/vmlinuz, dist/initrd, dist/ros.iso (build/build.sh).
# A case may also drive the serial console like a person: a `dialog` file
# (or `dialog.N` for boot N; see console.py) is played over the serial port,
# and `SEED=none` boots without any user-data drive (a live boot). A case.sh
# may define `post_check LOG` (run after each boot; non-zero fails the case),
# or `run_multi OUTDIR` to boot and drive several machines itself (050).
# Prints PASS/FAIL per case; console logs stay in qemu-tests/out/CASE/.
# Milestone times (seconds from QEMU start) go to qemu-tests/out/figures.txt.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
out=$here/out
mkdir -p "$out"
figs=$out/figures.txt
: > "$figs"

# KVM only when a tiny boot under it finishes quickly (it hangs on some hosts).
accel=(-accel tcg)
accel_name=tcg
if [ -z "${ROS_NO_KVM:-}" ] && [ -w /dev/kvm ]; then
  if timeout 20 qemu-system-x86_64 -enable-kvm -m 256 -display none -no-reboot \
      -kernel "$top/dist/vmlinuz" -append "panic=-1 console=ttyS0" -serial none >/dev/null 2>&1; then
    accel=(-enable-kvm -cpu host); accel_name=kvm
  fi
fi
# An entropy source, as cloud VMs (virtio-rng) and real machines (RDRAND)
# have: without one, TCG's default CPU has no RDRAND and the guest kernel's
# random pool needs ~5 s of jitter before getrandom(2) answers, which
# dockerd's Go runtime waits for. build/figures.sh boots its floor the same.
accel+=(-device virtio-rng-pci)
echo "qemu-tests: accelerator $accel_name" | tee -a "$figs"

key=$out/id_ed25519
[ -e "$key" ] || ssh-keygen -q -t ed25519 -N '' -f "$key"

# seed CASEDIR USERDATA OUT.iso: a NoCloud drive labelled cidata, or with
# SEED=configdrive an OpenStack config drive labelled config-2
seed() {
  local d; d=$(mktemp -d)
  if [ "${SEED:-cidata}" = configdrive ]; then
    mkdir -p "$d/openstack/latest"
    sed "s|@SSH_KEY@|$(cat "$key.pub")|" "$2" > "$d/openstack/latest/user_data"
    printf '{"uuid": "%s"}\n' "$(basename "$1")" > "$d/openstack/latest/meta_data.json"
    cp "$1/check.sh" "$here/guest-lib.sh" "$d/"
    xorriso -as mkisofs -quiet -V config-2 -J -r -o "$3" "$d" 2>/dev/null
  else
    sed "s|@SSH_KEY@|$(cat "$key.pub")|" "$2" > "$d/user-data"
    printf 'instance-id: %s\nlocal-hostname: ros\n' "$(basename "$1")" > "$d/meta-data"
    cp "$1/check.sh" "$here/guest-lib.sh" "$d/"
    xorriso -as mkisofs -quiet -V cidata -J -r -o "$3" "$d" 2>/dev/null
  fi
  rm -rf "$d"
}

# boot_once CASE N LOG: run QEMU until it exits or the deadline; watch markers
boot_once() {
  local c=$1 n=$2 log=$3 dir=$here/cases/$1
  local port=$((20000 + RANDOM % 20000))
  local dialog="" sock=$out/$c/serial-$n.sock
  if [ -e "$dir/dialog.$n" ]; then dialog=$dir/dialog.$n
  elif [ "$n" = 1 ] && [ -e "$dir/dialog" ]; then dialog=$dir/dialog; fi
  local serial=(-serial "file:$log")
  [ -n "$dialog" ] && serial=(-serial "unix:$sock,server=on,wait=on")
  local args=("${accel[@]}" -m "${MEM:-2048}" -smp 2 -display none -no-reboot -monitor none
    "${serial[@]}" -nic "user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:$port-:22")
  [ -n "${DISK:-}" ] && args+=(-drive "file=$out/$c/state.img,if=virtio,format=raw")
  [ "${SEED:-}" = none ] || args+=(-drive "file=$out/$c/cidata-$n.iso,if=virtio,format=raw,readonly=on")
  if [ "${BOOT:-kernel}" = iso ]; then
    args+=(-cdrom "$top/dist/ros.iso" -boot d)
  elif [ "$BOOT" = uefi ]; then
    args+=(-bios "${OVMF:-/usr/share/ovmf/OVMF.fd}" -cdrom "$top/dist/ros.iso" -boot d)
  else
    args+=(-kernel "$top/dist/vmlinuz" -initrd "$top/dist/initrd"
      -append "console=tty0 console=ttyS0,115200n8 quiet ${APPEND:-}")
  fi
  : > "$log"
  local t0; t0=$(date +%s.%N)
  rm -f "$sock"
  qemu-system-x86_64 "${args[@]}" &
  local qpid=$! ssh_done=""
  [ -n "$dialog" ] && python3 "$here/console.py" "$sock" "$log" "$dialog" &
  local -A seen=()
  # "ready service=docker": sysinit's line when the user engine first
  # answers /_ping; "MILESTONE user-docker-ready": a case's check service
  # (started after the engine, beside its other dependents) got its first
  # `docker info` answer
  local milestones=("ros init: ros" "system-docker answering" "login:" "ready service=docker" "MILESTONE user-docker-ready" "SHUTDOWN-START")
  local deadline=$((SECONDS + ${TIMEOUT:-600}))
  while kill -0 "$qpid" 2>/dev/null; do
    local now; now=$(date +%s.%N)
    for m in "${milestones[@]}"; do
      if [ -z "${seen[$m]:-}" ] && grep -aq "$m" "$log"; then
        seen[$m]=1
        printf '%s boot%s %-28s %6.1f s\n' "$c" "$n" "$m" "$(echo "$now $t0" | awk '{print $1-$2}')" >> "$figs"
      fi
    done
    if [ -n "${SSH_AFTER:-}" ] && [ -z "$ssh_done" ] && grep -aq "$SSH_AFTER" "$log"; then
      ssh_done=1
      if ssh -i "$key" -p "$port" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
          -o ConnectTimeout=20 -o BatchMode=yes rancher@127.0.0.1 'touch ~/ssh-ok && id' > "$out/$c/ssh.log" 2>&1; then
        echo "HOST ssh login ok: $(tail -1 "$out/$c/ssh.log")" >> "$out/$c/host.log"
      else
        echo "HOST ssh login FAILED" >> "$out/$c/host.log"
      fi
    fi
    # A guest vCPU starved by the emulator (TCG on a busy 2-core host: the
    # guest kernel reports a soft lockup / RCU stall and makes no progress
    # for minutes) is not a verdict on ros: stop now, the caller retries.
    if grep -aq -e "watchdog: BUG: soft lockup" -e "rcu_preempt detected stalls" "$log"; then
      kill "$qpid" 2>/dev/null; wait "$qpid" 2>/dev/null
      echo "guest CPU stall (emulator starvation) in boot $n" >> "$out/$c/host.log"; return 2
    fi
    for r in "${REJECT[@]}" "HOST-DIALOG FAIL"; do
      if grep -aq -- "$r" "$log"; then
        sleep 2; kill "$qpid" 2>/dev/null; wait "$qpid" 2>/dev/null
        echo "rejected marker: $r" >> "$out/$c/host.log"; return 1
      fi
    done
    if [ -n "${STOP_WHEN_SEEN:-}" ]; then
      local all=1 m
      for m in "${EXPECT[@]}"; do grep -aq -- "$m" "$log" || all=0; done
      if [ "$all" = 1 ]; then kill "$qpid" 2>/dev/null; wait "$qpid" 2>/dev/null; return 0; fi
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      kill "$qpid" 2>/dev/null; wait "$qpid" 2>/dev/null
      echo "timeout after ${TIMEOUT:-600}s" >> "$out/$c/host.log"; return 1
    fi
    sleep 0.5
  done
  wait "$qpid" 2>/dev/null
  wait 2>/dev/null  # the console driver ends with the serial port
  printf '%s boot%s %-28s %6.1f s\n' "$c" "$n" "qemu exited" "$(echo "$(date +%s.%N) $t0" | awk '{print $1-$2}')" >> "$figs"
  grep -a "FIGURE" "$log" | sed "s/^/$c boot$n /" | tr -d '\r' >> "$figs"
  return 0
}

run_case() {
  local c=$1 dir=$here/cases/$1
  (
    unset SKIP_UNLESS MEM BOOT BOOTS DISK APPEND TIMEOUT EXPECT EXPECT_1 EXPECT_2 REJECT SSH_AFTER STOP_WHEN_SEEN SEED
    unset -f post_check run_multi
    source "$dir/case.sh"
    rm -rf "${out:?}/$c"; mkdir -p "$out/$c"
    # A case may be opt-in (SKIP_UNLESS=VAR: runs only when VAR is set).
    if [ -n "${SKIP_UNLESS:-}" ] && [ -z "${!SKIP_UNLESS:-}" ]; then
      echo "SKIP $c (opt-in: set $SKIP_UNLESS=1)"; exit 0
    fi
    # A case that boots several machines at once drives them itself.
    if declare -F run_multi >/dev/null; then
      if run_multi "$out/$c"; then echo "PASS $c"; exit 0; fi
      echo "FAIL $c (console logs: $out/$c/)"; sed 's/^/  host: /' "$out/$c/host.log" 2>/dev/null
      exit 1
    fi
    [ -n "${DISK:-}" ] && truncate -s "$DISK" "$out/$c/state.img"
    local n ok=1
    for n in $(seq 1 "${BOOTS:-1}"); do
      local ud=$dir/user-data
      [ "$n" -gt 1 ] && [ -e "$dir/user-data.$n" ] && ud=$dir/user-data.$n
      [ "${SEED:-}" = none ] || seed "$dir" "$ud" "$out/$c/cidata-$n.iso"
      local log=$out/$c/console-$n.log
      local rc=0
      boot_once "$c" "$n" "$log" || rc=$?
      if [ "$rc" = 2 ]; then
        # Once, and said out loud: the stalled console log is kept.
        mv "$log" "${log%.log}.stalled.log"
        echo "  boot$n: RETRY after a guest CPU stall under $accel_name (log: ${log%.log}.stalled.log)"
        if [ "$n" = 1 ] && [ -n "${DISK:-}" ]; then
          rm -f "$out/$c/state.img"; truncate -s "$DISK" "$out/$c/state.img"
        fi
        rc=0
        boot_once "$c" "$n" "$log" || rc=$?
      fi
      [ "$rc" = 0 ] || ok=0
      local list=()
      if [ "${BOOTS:-1}" -eq 1 ]; then list=("${EXPECT[@]}"); else eval "list=(\"\${EXPECT_$n[@]}\")"; fi
      for m in "${list[@]}"; do
        grep -aq -- "$m" "$log" || { echo "missing marker in boot $n: $m" >> "$out/$c/host.log"; ok=0; }
      done
      grep -a "CHECK " "$log" | tr -d '\r' | sed "s/^/  boot$n: /"
      if [ "$ok" = 1 ] && declare -F post_check >/dev/null && ! post_check "$log" >> "$out/$c/host.log" 2>&1; then
        echo "post_check failed for boot $n" >> "$out/$c/host.log"; ok=0
      fi
      [ "$ok" = 1 ] || break
    done
    if [ -n "${SSH_AFTER:-}" ] && ! grep -q "ssh login ok" "$out/$c/host.log" 2>/dev/null; then
      echo "no SSH login" >> "$out/$c/host.log"; ok=0
    fi
    if [ "$ok" = 1 ]; then
      echo "PASS $c"
    else
      echo "FAIL $c (console logs: $out/$c/)"; sed 's/^/  host: /' "$out/$c/host.log" 2>/dev/null
      exit 1
    fi
  )
}

cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=($(cd "$here/cases" && ls -d [0-9]*))
fail=0
for c in "${cases[@]}"; do
  start=$SECONDS
  run_case "$c" || fail=1
  echo "  ($c took $((SECONDS - start)) s)"
done
echo; echo "== figures (qemu-tests/out/figures.txt)"; cat "$figs"
exit $fail
