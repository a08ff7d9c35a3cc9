#!/usr/bin/env bash
# Shared helpers for the image build: a download cache of Debian packages and
# an unpacked sysroot of them. Sourced by build/*.sh and images/*.sh.
#   ROS_CACHE  downloads cache (default ~/.cache/ros; used when present,
#              created when not)
#   ROS_WORK   scratch directory for unpacked trees (default build/work)
set -euo pipefail

ROS_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROS_CACHE=${ROS_CACHE:-$HOME/.cache/ros}
ROS_WORK=${ROS_WORK:-$ROS_TOP/build/work}
ROS_VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROS_TOP/Cargo.toml" | head -1)
DEBS=$ROS_CACHE/debs
# Debian's kernel package (the image kernel)
KPKG=${ROS_KPKG:-$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n "s/ *Depends: \(linux-image-[0-9].*\)/\1/p" | head -1)}
SYSROOT=$ROS_WORK/sysroot
mkdir -p "$DEBS" "$ROS_WORK"

log() { printf '[build] %s\n' "$*" >&2; }

# The dependency closure of packages (names only, no virtual packages).
closure() {
  apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
    --no-breaks --no-replaces --no-enhances "$@" 2>/dev/null |
    grep '^\w' | sort -u
}

# Download packages (and their closure) into the cache; skip what is there.
fetch_debs() {
  local need=() p
  for p in $(closure "$@"); do
    # cached: done (asking apt-cache first cost ~0.5 s a package)
    compgen -G "$DEBS/${p}_*.deb" >/dev/null && continue
    # virtual packages have no candidate
    case "$(apt-cache policy "$p" 2>/dev/null)" in *"Candidate: ("*|"") continue ;; esac
    need+=("$p")
  done
  if [ "${#need[@]}" -gt 0 ]; then
    log "downloading ${#need[@]} packages"
    (cd "$DEBS" && apt-get download -q "${need[@]}" >/dev/null) || {
      apt-get update -q >/dev/null && (cd "$DEBS" && apt-get download -q "${need[@]}" >/dev/null)
    }
  fi
}

# Unpack packages (and their closure) into the shared sysroot, once each.
unpack_debs() {
  fetch_debs "$@"
  mkdir -p "$SYSROOT/.stamps"
  local p f
  for p in $(closure "$@"); do
    [ -e "$SYSROOT/.stamps/$p" ] && continue
    for f in "$DEBS/${p}"_*.deb; do
      [ -e "$f" ] || continue
      dpkg -x "$f" "$SYSROOT" && touch "$SYSROOT/.stamps/$p"
    done
  done
}

SYSROOT_LIBS() {
  echo "$SYSROOT/lib/x86_64-linux-gnu:$SYSROOT/usr/lib/x86_64-linux-gnu:$SYSROOT/usr/lib/x86_64-linux-gnu/systemd:$SYSROOT/lib/systemd:$SYSROOT/usr/lib/x86_64-linux-gnu/dropbear"
}

# The file a path inside the sysroot names, its symlinks followed inside the
# sysroot (Debian's /sbin/ip -> /bin/ip is absolute: followed as-is it
# would name the build host's own /bin/ip).
in_sysroot() {
  local p=$1 n=0 t
  while [ -L "$SYSROOT$p" ] && [ "$n" -lt 16 ]; do
    t=$(readlink "$SYSROOT$p")
    case "$t" in /*) p=$t ;; *) p=$(dirname "$p")/$t ;; esac
    n=$((n + 1))
  done
  printf '%s\n' "$SYSROOT$p"
}

# Copy binaries (paths inside the sysroot, e.g. /usr/sbin/chronyd) into DEST
# at the same path, plus every shared library ldd names, plus the loader —
# all from the sysroot, never from the build host.
install_bins() {
  local dest=$1; shift
  local b src lib
  for b in "$@"; do
    src=$(in_sysroot "$b")
    # from the sysroot only: a fallback to the build host's own file hid a
    # package missing from unpack_debs until a machine without it built
    [ -f "$src" ] || { log "install_bins: $b is not in the sysroot (add its package to unpack_debs)"; return 1; }
    mkdir -p "$dest$(dirname "$b")"
    # never write through a symlink already there (it may point at the
    # build host's own files)
    rm -f "$dest$b"
    cp -L "$src" "$dest$b"
    local deps; deps=$(LD_LIBRARY_PATH=$(SYSROOT_LIBS) ldd "$src" 2>/dev/null || true)
    # a library ldd cannot find must already be in DEST (sudo's
    # libsudo_util, found by its RUNPATH, is copied there by the recipe)
    local missing; missing=$(awk '/=> not found/{print $1}' <<<"$deps")
    for lib in $missing; do
      [ -n "$(find "$dest" -name "$lib" -print -quit)" ] && continue
      log "install_bins: $b needs $lib, in neither the sysroot's library path nor $dest"
      return 1
    done
    awk '/=> \//{print $3} /^[[:space:]]*\/lib64/{print $1}' <<<"$deps" |
      while read -r lib; do
        local name; name=$(basename "$lib")
        local target=/lib/x86_64-linux-gnu/$name
        case "$lib" in /lib64/*) target=/lib64/$name ;; esac
        [ -e "$dest$target" ] && [ ! -L "$dest$target" ] && continue
        mkdir -p "$dest$(dirname "$target")"
        rm -f "$dest$target"
        # ldd names the loader (and a library the sysroot lacks) by the
        # host's path: take the sysroot's file of that name
        case "$lib" in "$SYSROOT"/*) ;; *) lib=$(in_sysroot "$lib") ;; esac
        [ -f "$lib" ] || { log "install_bins: $b needs $name, not in the sysroot"; return 1; }
        cp -L "$lib" "$dest$target"
      done || return 1
  done
}
