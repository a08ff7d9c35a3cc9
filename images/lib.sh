#!/usr/bin/env bash
# Helpers for image recipes: write a `docker save` archive from layer
# directories without a registry or `docker build`.
set -euo pipefail

# layer_tar DIR OUT: a reproducible tar of DIR (root-owned, fixed mtime).
layer_tar() {
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 \
    -C "$1" -cf "$2" .
}

# save_archive OUT TAG CMD LAYERDIR...: a docker-save archive with one layer
# per directory (lower first) and a config whose Cmd is CMD (JSON array).
save_archive() {
  local out=$1 tag=$2 cmd=$3; shift 3
  local tmp; tmp=$(mktemp -d)
  local layers=() diffs=() d sha
  for d in "$@"; do
    layer_tar "$d" "$tmp/layer.tar"
    sha=$(sha256sum "$tmp/layer.tar" | cut -d' ' -f1)
    mkdir -p "$tmp/$sha"
    mv "$tmp/layer.tar" "$tmp/$sha/layer.tar"
    layers+=("\"$sha/layer.tar\"")
    diffs+=("\"sha256:$sha\"")
  done
  local IFS=,
  local config="{\"architecture\":\"amd64\",\"os\":\"linux\",\"created\":\"1970-01-01T00:00:00Z\",\"config\":{\"Env\":[\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\"],\"Cmd\":$cmd,\"Labels\":{\"io.rancher.os.image\":\"$tag\"}},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[${diffs[*]}]}}"
  local csha; csha=$(printf '%s' "$config" | sha256sum | cut -d' ' -f1)
  printf '%s' "$config" > "$tmp/$csha.json"
  printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":[%s]}]' "$csha" "$tag" "${layers[*]}" > "$tmp/manifest.json"
  unset IFS
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$tmp" -cf "$out" .
  rm -rf "$tmp"
}

# strip_docs DIR: drop docs, man pages, locales.
strip_docs() {
  rm -rf "$1"/usr/share/{doc,man,info,locale,lintian,bash-completion} 2>/dev/null || true
}

# merge_archives OUT ARCHIVE...: one docker-save archive holding every
# image of the given archives; a layer they share (the base) is stored once,
# and one `docker load` reads them all.
merge_archives() {
  local out=$1; shift
  local tmp; tmp=$(mktemp -d)
  local entries=() a
  for a in "$@"; do
    tar -xf "$a" -C "$tmp"
    entries+=("$(sed 's/^\[//; s/\]$//' "$tmp/manifest.json")")
    rm "$tmp/manifest.json"
  done
  local IFS=,
  printf '[%s]' "${entries[*]}" > "$tmp/manifest.json"
  unset IFS
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$tmp" -cf "$out" .
  rm -rf "$tmp"
}
