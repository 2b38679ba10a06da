#!/usr/bin/env bash
# tree-with-packages.sh LABEL BASE DEST KEY PACKAGE...: makes DEST/rootfs a copy of BASE/rootfs with PACKAGEs
# installed from Debian's archive by apt inside a chroot (no service starts there), then writes KEY to
# DEST/.complete. The tree is built beside DEST and moved into place only when complete, so an interrupted
# build never leaves a half tree that looks done. The callers (systemd-host-tree.sh, libvirt-host-tree.sh)
# decide from KEY whether a build is needed and hold their lock around this.
set -euo pipefail

label=$1 base=$2 dest=$3 key=$4
shift 4
packages=("$@")
say() { printf '%s: %s\n' "$label" "$*" >&2; }
die() { say "FAILED: $*"; exit 1; }

tmp=$(dirname "$dest")/.$(basename "$dest").tmp
cleanup() {
  for m in proc sys dev; do umount -l "$tmp/rootfs/$m" 2>/dev/null || true; done
}
trap cleanup EXIT
rm -rf "$tmp"
mkdir -p "$tmp"
t0=$SECONDS
say "copying $base/rootfs"
cp -a "$base/rootfs" "$tmp/rootfs"
r=$tmp/rootfs
cp /etc/resolv.conf "$r/etc/resolv.conf"
mount -t proc proc "$r/proc"
mount --rbind /sys "$r/sys"
mount --rbind /dev "$r/dev"
# No service starts inside the chroot (invoke-rc.d asks policy-rc.d).
printf '#!/bin/sh\nexit 101\n' >"$r/usr/sbin/policy-rc.d"
chmod 755 "$r/usr/sbin/policy-rc.d"
say "apt-get install ${packages[*]} (a few minutes the first time)"
if ! chroot "$r" /usr/bin/env DEBIAN_FRONTEND=noninteractive sh -c \
  "apt-get update -q && apt-get install -y -q --no-install-recommends ${packages[*]} && apt-get clean" >"$tmp/build.log" 2>&1; then
  tail -n 20 "$tmp/build.log" >&2
  die "apt-get failed (log: $tmp/build.log)"
fi
rm -f "$r/usr/sbin/policy-rc.d"
rm -rf "$r"/var/lib/apt/lists/*
: >"$r/etc/resolv.conf"
cleanup
trap - EXIT
echo "$key" >"$tmp/.complete"
rm -rf "$dest"
mv "$tmp" "$dest"
say "ready: $dest/rootfs (built in $((SECONDS - t0)) s)"
