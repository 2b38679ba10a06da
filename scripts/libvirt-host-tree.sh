#!/usr/bin/env bash
# libvirt-host-tree.sh: the tree test/system/libvirt.test.ts boots: a copy of scripts/systemd-host-tree.sh's
# Debian host tree with libvirt's daemon, its qemu driver, virsh and qemu-system-x86 (TCG is enough) added
# from Debian's archive by apt inside a chroot. Built once into CACHE/libvirt-host/rootfs and rebuilt only when
# the base tree, the package list or this script's format changes. Prints the tree's path.
# Environment: BERTH_CACHE (default /var/tmp/berth-cache).
set -euo pipefail

CACHE=${BERTH_CACHE:-/var/tmp/berth-cache}
FORMAT=1
# --no-install-recommends keeps the tree small: no GUI, no firewalld, no lvm; the qemu driver and the
# BIOS images qemu needs are named (they are Depends anyway, listed so the key says what is inside).
PACKAGES=(libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86 seabios iptables)
say() { printf 'libvirt-host-tree: %s\n' "$*" >&2; }
die() { say "FAILED: $*"; exit 1; }

here=$(cd "$(dirname "$0")" && pwd)
base=$CACHE/debian-host
dest=$CACHE/libvirt-host
mkdir -p "$CACHE"
exec 9>"$CACHE/.libvirt-host.lock"
flock 9
# The base is made (or checked) first: it is cheap when cached and its key is part of ours.
bash "$here/systemd-host-tree.sh" >/dev/null
key="$FORMAT ${PACKAGES[*]} $(cat "$base/.complete")"
if [[ -f $dest/.complete && $(cat "$dest/.complete") == "$key" ]]; then
  echo "$dest/rootfs"
  exit 0
fi
tmp=$CACHE/.libvirt-host.tmp
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
say "apt-get install ${PACKAGES[*]} (a few minutes the first time)"
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
say "ready: $dest/rootfs (built in $((SECONDS - t0)) s)"
echo "$dest/rootfs"
