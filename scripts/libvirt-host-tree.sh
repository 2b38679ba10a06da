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
bash "$here/tree-with-packages.sh" libvirt-host-tree "$base" "$dest" "$key" "${PACKAGES[@]}"
echo "$dest/rootfs"
