#!/usr/bin/env bash
# Assemble the initrd: ros as /init, busybox, the Docker engine with its
# libraries, mkfs.ext4, the kernel modules PID 1 loads (decompressed, with
# modules.dep), os-config.yml and the system image archives.
#   build/initrd.sh ROS_BINARY OUT
# Writes OUT (the store's cpio + the compressed root, for kernel+initrd
# boots: PXE, `qemu -kernel`) and, for the ISO, $ROS_WORK/initrd-core.img
# (the root alone) and $ROS_WORK/ros-store.sqfs (a file on the CD).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
ros_bin=$1 out=$2

unpack_debs "$KPKG" busybox-static docker.io containerd runc crun tini iproute2 e2fsprogs kmod
kver=$(ls "$SYSROOT/lib/modules" | sort -V | tail -1)
r=$ROS_WORK/initrd
rm -rf "$r"; mkdir -p "$r"/{bin,sbin,usr/bin,usr/sbin,usr/share/ros/images,etc,proc,sys,dev,run,tmp,root,home,opt,mnt,media,var/lib,var/log,lib/modules,lib/firmware,lib64}
chmod 1777 "$r/tmp"
ln -s ../run "$r/var/run"

install -m 755 "$ros_bin" "$r/usr/bin/ros"
strip --strip-all "$r/usr/bin/ros" 2>/dev/null || true
ln -s usr/bin/ros "$r/init"
for n in reboot poweroff halt; do ln -s /usr/bin/ros "$r/sbin/$n"; done
# system-containerd's shim: ros-shim first in its PATH (src/paths.rs
# SHIM_DIR) puts every system container in one runc v2 shim
mkdir -p "$r/usr/lib/ros/shim"
install -m 755 "$(dirname "$ros_bin")/ros-shim" "$r/usr/lib/ros/shim/containerd-shim-runc-v2"
strip --strip-all "$r/usr/lib/ros/shim/containerd-shim-runc-v2" 2>/dev/null || true

cp "$SYSROOT/bin/busybox" "$r/bin/busybox"
for a in $("$SYSROOT/bin/busybox" --list-full); do
  case "$a" in */reboot|*/poweroff|*/halt|*/init|*/linuxrc) continue ;; esac
  [ -e "$r/$a" ] || ln -s /bin/busybox "$r/$a"
done

# the engine (system-docker here; bind-mounted into the user engine's and
# the console's containers)
install_bins "$r" /usr/sbin/dockerd /usr/bin/containerd /usr/bin/containerd-shim-runc-v2 \
  /usr/sbin/runc /usr/bin/crun /usr/sbin/docker-proxy /usr/bin/docker /sbin/ip /sbin/mke2fs
cp "$SYSROOT/usr/bin/tini-static" "$r/usr/bin/docker-init"
rm -f "$r/bin/ip" "$r/sbin/mkfs.ext4"
ln -sf mke2fs "$r/sbin/mkfs.ext4"
printf '[defaults]\n\tbase_features = sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr\n\tdefault_mntopts = acl,user_xattr\n\tblocksize = 4096\n\tinode_size = 256\n\tinode_ratio = 16384\n[fs_types]\n\text4 = {\n\t\tfeatures = has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize\n\t}\n' > "$r/etc/mke2fs.conf"

# kernel modules, decompressed, each tree with a fresh modules.dep:
#  - the initramfs holds what finding and mounting the boot medium needs
#    (EARLY_MODULES and MEDIUM_MODULES in src/init/modules.rs);
#  - the store holds all PID 1 loads (BASE_MODULES, NETWORK_MODULES, the
#    medium's too): after
#    the switch /lib/modules points into it, so they take no RAM once loaded.
mdir=$SYSROOT/lib/modules/$kver
[ -s "$mdir/modules.dep" ] || depmod -b "$SYSROOT" "$kver"
# module_tree ROOT LIST...: LIST's modules with their dependencies into
# ROOT/lib/modules/$kver, decompressed, then depmod; prints the count
module_tree() {
  local root=$1; shift
  local -A want=()
  local m line f
  for m in "$@"; do
    line=$(awk -v m="$m" -F: '{n=$1; sub(".*/","",n); sub("\\.ko.*","",n); gsub("-","_",n); if (n==m) {print; exit}}' "$mdir/modules.dep")
    [ -n "$line" ] || { log "initrd: no kernel module $m in $kver (src/init/modules.rs)"; return 1; }
    for f in ${line/:/ }; do want[$f]=1; done
  done
  for f in "${!want[@]}"; do
    mkdir -p "$root/lib/modules/$kver/$(dirname "$f")"
    cp "$mdir/$f" "$root/lib/modules/$kver/$f"
    case "$f" in *.xz) xz -d "$root/lib/modules/$kver/$f" ;; esac
  done
  cp "$mdir"/modules.{order,builtin,builtin.modinfo} "$root/lib/modules/$kver/" 2>/dev/null || true
  depmod -b "$root" "$kver"
  echo "${#want[@]}"
}
mod_list() { # the names in `pub const $1: &[&str] = &[…];` of src/init/modules.rs
  awk -v c="pub const $1: " 'index($0, c) == 1 {on = 1} on {print} on && /\];/ {exit}' "$ROS_TOP/src/init/modules.rs" \
    | grep -v '^ *//' | grep -o '"[^"]*"' | tr -d '"'
}
n_early=$(module_tree "$r" $(mod_list EARLY_MODULES) $(mod_list MEDIUM_MODULES))
storemods=$ROS_WORK/store-modules
rm -rf "$storemods"
n_all=$(module_tree "$storemods" $(mod_list BASE_MODULES) $(mod_list NETWORK_MODULES) $(mod_list EARLY_MODULES) $(mod_list MEDIUM_MODULES))
log "initrd: $n_early kernel modules for $kver in the initramfs, $n_all in the store"

cp "$ROS_TOP/os-config/os-config.yml" "$r/usr/share/ros/os-config.yml"
mkdir -p "$r/usr/share/ros/services"
cp "$ROS_TOP"/os-config/services/*.yml "$r/usr/share/ros/services/"
# one archive for all system images: the shared base layer once, one load
source "$ROS_TOP/images/lib.sh"
merge_archives "$r/usr/share/ros/images/system.tar" "$ROS_WORK"/images/*.tar
mkdir -p "$r/usr/share/ros/user-images" "$r/usr/share/ros/cluster-images"
cp "$ROS_WORK"/user-images/* "$r/usr/share/ros/user-images/"
# the load balancer's image: loaded by `ros cluster up`, not at every boot
mv "$r/usr/share/ros/user-images/lb-haproxy.tar" "$r/usr/share/ros/cluster-images/"
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$r/etc/passwd"
printf 'root:x:0:\ntty:x:5:\ndisk:x:6:\nlp:x:7:\nkmem:x:15:\ndialout:x:20:\ncdrom:x:24:\ntape:x:26:\naudio:x:29:\nvideo:x:44:\ninput:x:104:\nkvm:x:105:\nrender:x:106:\nsgx:x:107:\ndocker:x:998:\n' > "$r/etc/group"
printf 'NAME="ros"\nID=ros\nVERSION_ID=%s\n' "$ROS_VERSION" > "$r/etc/os-release"
printf 'passwd: files\ngroup: files\nhosts: files dns\n' > "$r/etc/nsswitch.conf"

# The store: what is big and only read (the engine binaries, the image
# archives) goes into a squashfs that PID 1 mounts at /usr/lib/ros-store
# (src/paths.rs STORE_DIR) instead of copying it into the tmpfs root; the
# old paths become links into it.
store=$ROS_WORK/store
rm -rf "$store"; mkdir -p "$store"
for b in /usr/sbin/dockerd /usr/bin/containerd /usr/bin/containerd-shim-runc-v2 /usr/sbin/runc /usr/bin/crun \
    /usr/sbin/docker-proxy /usr/bin/docker /usr/bin/docker-init /usr/share/ros/images /usr/share/ros/user-images \
    /usr/share/ros/cluster-images; do
  mv "$r$b" "$store/$(basename "$b")"
  ln -s "/usr/lib/ros-store/$(basename "$b")" "$r$b"
done
# dockerd and the docker CLI are PIE: prelinked here, each engine keeps
# ~5 MB of relocated pages out of its private memory and skips 244k
# relocations at every start (build/prelink.py says why)
for b in dockerd docker; do
  python3 "$ROS_TOP/build/prelink.py" "$store/$b" "$store/$b.prelinked" >&2
  chmod 755 "$store/$b.prelinked"
  mv "$store/$b.prelinked" "$store/$b"
done
mv "$storemods/lib/modules" "$store/modules"
# the libraries of the dynamic binaries (the engine, ip, mke2fs): nothing
# runs them before the store is mounted
mkdir -p "$store/lib" "$store/lib64"
mv "$r/lib/x86_64-linux-gnu" "$store/lib/"
ln -s /usr/lib/ros-store/lib/x86_64-linux-gnu "$r/lib/x86_64-linux-gnu"
for f in "$r"/lib64/*; do
  mv "$f" "$store/lib64/"
  ln -s "/usr/lib/ros-store/lib64/$(basename "$f")" "$f"
done
# system-docker's image store, built now (build/sysstore.sh): the node
# links its layers instead of loading the archive at first boot. Without
# root/dockerd here, the archive stays and is loaded at boot as before.
if bash "$ROS_TOP/build/sysstore.sh" "$store/images/system.tar" "$store/system-docker"; then
  rm -f "$store/images/system.tar"
else
  log "initrd: no prebuilt system-docker store; system.tar is loaded at first boot"
fi
sq=$ROS_WORK/ros-store.sqfs
mksquashfs "$store" "$sq" -comp "${ROS_STORE_COMP:-zstd}" ${ROS_STORE_OPTS:--Xcompression-level 15} \
  -b "${ROS_STORE_BLOCK:-256K}" -all-root -no-xattrs -noappend -quiet >/dev/null
log "initrd: store $(du -h "$sq" | cut -f1) squashfs ($(du -sh "$store" | cut -f1) unpacked)"

# The rest (ros, busybox, libraries, modules, config) is what the tmpfs
# root holds. ROS_INITRD_COMP: the cpio's compressor (the kernel has gzip,
# xz and zstd); zstd decompresses fastest at boot, at about the same speed
# whatever the level: -19 makes the core 7.3 MB instead of 8.2 at -9 (less
# for GRUB to read off the CD; ~20 s more to build), with an 8 MB window
# the kernel's decompressor allocates at boot (--ultra -22 would ask 128).
case "${ROS_INITRD_COMP:-zstd}" in
  xz) comp=(xz -q -T0 --check=crc32 -9) ;;
  gzip) comp=(gzip -9) ;;
  *) comp=(zstd -q -T0 -19) ;;
esac
core=$ROS_WORK/initrd-core.img
(cd "$r" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) > "$ROS_WORK/initrd-core.cpio"
"${comp[@]}" < "$ROS_WORK/initrd-core.cpio" > "$core"
# The kernel+initrd boot's initrd (PXE, qemu -kernel) carries the store
# and is loaded from memory, not read off a CD: its core is lz4 (legacy
# frames, as the kernel reads them), 11 MB instead of 7.5 but unpacked in
# ~0.35 s less under TCG (PID 1 at uptime 2.3-2.5 s against 2.7-2.8 s,
# A/B interleaved x3); the ISO's small initrd keeps the best ratio.
# ROS_KINITRD_COMP=same: the ISO's compressor for both.
if [ "${ROS_KINITRD_COMP:-lz4}" = lz4 ]; then
  lz4 -q -l -9 < "$ROS_WORK/initrd-core.cpio" > "$ROS_WORK/initrd-core.lz4"
  kcore=$ROS_WORK/initrd-core.lz4
else
  kcore=$core
fi
rm -f "$ROS_WORK/initrd-core.cpio"
# The kernel unpacks concatenated archives in order; the store goes first,
# uncompressed (it is squashfs already), as early-microcode cpios do.
(cd "$ROS_WORK" && echo ros-store.sqfs | cpio -o -H newc --quiet -R 0:0) > "$out.tmp"
cat "$kcore" >> "$out.tmp"
mv "$out.tmp" "$out"
