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
bash "$here/tree-with-packages.sh" systemd-host-tree "$base" "$dest" "$key" "${PACKAGES[@]}"
echo "$dest/rootfs"
