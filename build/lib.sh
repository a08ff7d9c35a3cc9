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
    --no-breaks --no-replaces --no-enhances --no-pre-depends "$@" 2>/dev/null |
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

# Copy binaries (paths inside the sysroot, e.g. /usr/sbin/chronyd) into DEST
# at the same path, plus every shared library ldd names, plus the loader.
install_bins() {
  local dest=$1; shift
  local b src lib
  for b in "$@"; do
    src=$SYSROOT$b
    [ -e "$src" ] || src=$b
    mkdir -p "$dest$(dirname "$b")"
    # never write through a symlink already there (it may point at the
    # build host's own files)
    rm -f "$dest$b"
    cp -L "$src" "$dest$b"
    LD_LIBRARY_PATH=$(SYSROOT_LIBS) ldd "$src" 2>/dev/null | awk '/=> \//{print $3} /^[[:space:]]*\/lib64/{print $1}' |
      while read -r lib; do
        local name; name=$(basename "$lib")
        local target=/lib/x86_64-linux-gnu/$name
        case "$lib" in /lib64/*) target=/lib64/$name ;; esac
        [ -e "$dest$target" ] && [ ! -L "$dest$target" ] && continue
        mkdir -p "$dest$(dirname "$target")"
        rm -f "$dest$target"
        cp -L "$lib" "$dest$target"
      done
  done
}
