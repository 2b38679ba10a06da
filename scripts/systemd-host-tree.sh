#!/usr/bin/env bash
# systemd-host-tree.sh: the tree test/system boots as a systemd host: a copy of the project's Debian tree
# (scripts/rootfs.sh debian) with what a Debian host running machined has besides: systemd-container
# (machinectl, systemd-nspawn, systemd-machined), systemd-userdbd (userdbctl), libnss-systemd and
# libnss-mymachines, and procps (ps -o machine), installed from Debian's archive by apt inside a chroot. Built once into
# CACHE/debian-host/rootfs and rebuilt only when the package list or this script's format changes.
# Prints the tree's path. Environment: BERTH_CACHE (default /var/tmp/berth-cache).
set -euo pipefail

CACHE=${BERTH_CACHE:-/var/tmp/berth-cache}
FORMAT=2
PACKAGES=(systemd-container systemd-userdbd libnss-systemd libnss-mymachines procps)
say() { printf 'systemd-host-tree: %s\n' "$*" >&2; }
die() { say "FAILED: $*"; exit 1; }

here=$(cd "$(dirname "$0")" && pwd)
base=$CACHE/debian
dest=$CACHE/debian-host
key="$FORMAT ${PACKAGES[*]} $(cat "$base/.complete" 2>/dev/null || true)"
exec 9>"$CACHE/.debian-host.lock"
flock 9
if [[ -f $dest/.complete && $(cat "$dest/.complete") == "$key" ]]; then
  echo "$dest/rootfs"
  exit 0
fi
[[ -f $base/.complete ]] || bash "$here/rootfs.sh" debian >&2
key="$FORMAT ${PACKAGES[*]} $(cat "$base/.complete")"
tmp=$CACHE/.debian-host.tmp
cleanup() {
  for m in proc sys dev; do umount -l "$tmp/rootfs/$m" 2>/dev/null || true; done
}
trap cleanup EXIT
rm -rf "$tmp"
mkdir -p "$tmp"
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
say "apt-get install ${PACKAGES[*]}"
if ! chroot "$r" /usr/bin/env DEBIAN_FRONTEND=noninteractive sh -c \
  "apt-get update -q && apt-get install -y -q --no-install-recommends ${PACKAGES[*]} && apt-get clean" >"$tmp/build.log" 2>&1; then
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
say "ready: $dest/rootfs"
echo "$dest/rootfs"
