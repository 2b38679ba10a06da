#!/usr/bin/env bash
# vm-image.sh: a raw GPT disk image of the project's busybox test tree, for systemd-vmspawn's --image= (whose
# image dissection wants a partition table with a root partition of the host's architecture), plus an
# initramfs for vmspawn's direct kernel boot. Cached; rebuilt only when an input or this script's format
# version changes, so a second run costs a few milliseconds.
#
#   scripts/vm-image.sh          build (if needed) CACHE/vm-image/ and print its path
#   scripts/vm-image.sh path     print the folder only
#
# CACHE/vm-image/ holds:
#   root.raw          GPT, one partition of type "root-x86-64" (label root-x86-64) with an ext4 file system
#                     made by mkfs.ext4 -d from CACHE/busybox/rootfs
#   initrd.cpio.gz    CACHE/vm/initrd.cpio.gz followed by a second cpio archive whose /init replaces the
#                     project's: it boots like that one, loads the ACPI button and evdev modules (taken
#                     from the same kernel package), writes to vmspawn's virtio console (hvc0), then waits
#                     for the power button (what qemu's system_powerdown, and so vmspawn's PowerOff, press)
# Environment: BERTH_CACHE (default /var/tmp/berth-cache). Needs python3, mkfs.ext4, cpio, gzip, dpkg-deb;
# builds the busybox tree and the VM kernel with scripts/rootfs.sh when they are missing.
set -euo pipefail

CACHE=${BERTH_CACHE:-/var/tmp/berth-cache}
HERE=$(cd "$(dirname "$0")" && pwd)
FORMAT=2
DEST=$CACHE/vm-image

say() { printf 'vm-image: %s\n' "$*" >&2; }
die() { say "FAILED: $*"; exit 1; }

[[ ${1:-} == path ]] && { echo "$DEST"; exit 0; }
[[ $# -eq 0 ]] || { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

# The inputs' completion stamps name their versions; ours is stale when either, or this script, changes.
inputs_key() {
  echo "$FORMAT $(sha256sum <"$HERE/vm-image.sh" | cut -c1-16) $(cat "$CACHE/busybox/.complete" 2>/dev/null) $(cat "$CACHE/vm/.complete" 2>/dev/null)"
}

build() {
  [[ -f $CACHE/busybox/.complete && -f $CACHE/vm/.complete ]] || bash "$HERE/rootfs.sh" busybox vm
  local key
  key=$(inputs_key)
  if [[ -f $DEST/.complete && $(cat "$DEST/.complete") == "$key" ]]; then echo "$DEST"; return 0; fi
  local c
  for c in python3 mkfs.ext4 cpio gzip dpkg-deb; do command -v "$c" >/dev/null || die "$c is missing; run scripts/setup.sh"; done
  say "building $DEST"
  local tmp=$CACHE/.vm-image.tmp
  rm -rf "$tmp"
  mkdir -p "$tmp/overlay"
  # 64 MiB disk: the partition starts at 1 MiB and ends before the 33 sectors of the backup GPT.
  local size=$((64 * 1024 * 1024)) start=2048 sectors last
  sectors=$((size / 512))
  last=$((sectors - 34))
  truncate -s "$size" "$tmp/root.raw"
  python3 - "$tmp/root.raw" "$start" "$last" <<'EOF'
# Writes a protective MBR and both GPT headers and entry arrays for one root-x86-64 partition.
import struct, sys, uuid, zlib
path, first, last = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(path, 'r+b') as f:
    f.seek(0, 2)
    total = f.tell() // 512
    root_type = uuid.UUID('4f68bce3-e8cd-4db1-96e7-fbcaf984b709')
    entry = struct.pack('<16s16sQQQ72s', root_type.bytes_le, uuid.uuid4().bytes_le, first, last, 0,
                        'root-x86-64'.encode('utf-16-le'))
    entries = entry + b'\0' * (128 * 128 - len(entry))
    entries_crc = zlib.crc32(entries)
    disk = uuid.uuid4().bytes_le
    def header(mine, other, entries_lba):
        h = struct.pack('<8sIIIIQQQQ16sQIII', b'EFI PART', 0x10000, 92, 0, 0, mine, other, 34, total - 34,
                        disk, entries_lba, 128, 128, entries_crc)
        h = h[:16] + struct.pack('<I', zlib.crc32(h)) + h[20:]
        return h + b'\0' * (512 - len(h))
    mbr = bytearray(512)
    mbr[446:462] = struct.pack('<BBBBBBBBII', 0, 0, 2, 0, 0xEE, 0xFF, 0xFF, 0xFF, 1, min(total - 1, 0xFFFFFFFF))
    mbr[510:512] = b'\x55\xaa'
    f.seek(0); f.write(mbr)
    f.seek(512); f.write(header(1, total - 1, 2)); f.write(entries)
    f.seek((total - 33) * 512); f.write(entries); f.write(header(total - 1, 1, total - 33))
EOF
  # mkfs.ext4 writes the file system into the partition's byte range of the image file.
  # Under rootfs.sh's own lock, so that a concurrent rebuild of the busybox tree is not read half-way.
  (
    flock -w 1800 8 || die "timed out waiting for $CACHE/.busybox.lock"
    mkfs.ext4 -q -F -L root -E "offset=$((start * 512))" -d "$CACHE/busybox/rootfs" "$tmp/root.raw" \
      "$(((last - start + 1) / 2))k" || die "mkfs.ext4 failed"
  ) 8>"$CACHE/.busybox.lock"
  # The ACPI button and evdev drivers (no dependencies of their own), which the project's initramfs lacks,
  # from the same kernel package scripts/rootfs.sh unpacked the kernel from.
  local deb kver
  deb=$CACHE/debs/$(awk '{ print $2 }' "$CACHE/vm/.complete")
  kver=$(cat "$CACHE/vm/kernel-version")
  [[ -f $deb ]] || die "kernel package $deb is gone; run scripts/rootfs.sh vm"
  mkdir -p "$tmp/pkg" "$tmp/overlay/lib/modules/extra"
  dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp/pkg" "./lib/modules/$kver/kernel/drivers/acpi/button.ko" \
    "./lib/modules/$kver/kernel/drivers/input/evdev.ko" || die "no button/evdev modules in $deb"
  cp "$tmp/pkg/lib/modules/$kver/kernel/drivers/acpi/button.ko" "$tmp/pkg/lib/modules/$kver/kernel/drivers/input/evdev.ko" \
    "$tmp/overlay/lib/modules/extra/"
  rm -rf "$tmp/pkg"
  cat >"$tmp/overlay/init" <<'EOF'
#!/bin/busybox sh
# berth vmspawn test VM init: boots as the project's /init does and then stays up (like berth.hold=1), except
# that the guest powers off when the ACPI power button is pressed (evdev: any event on its input device).
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "BERTH-GUEST-BOOTED uptime=$(cut -d' ' -f1 /proc/uptime)"
while read -r m; do insmod "/lib/modules/$m" 2>/dev/null; done </lib/modules/load-order
insmod /lib/modules/extra/evdev.ko
insmod /lib/modules/extra/button.ko
# vmspawn's console is a virtio console (console=hvc0), which exists only now that its module is loaded.
for _ in 1 2 3 4 5 6 7 8 9 10; do [ -e /dev/hvc0 ] && break; sleep 0.1; done
[ -e /dev/hvc0 ] && exec </dev/hvc0 >/dev/hvc0 2>&1
echo "BERTH-GUEST-READY uptime=$(cut -d' ' -f1 /proc/uptime)"
button=""
for d in /sys/class/input/event*; do
  [ -e "$d/device/name" ] || continue
  case $(cat "$d/device/name") in *"Power Button"*) button=/dev/input/${d##*/} ;; esac
done
if [ -n "$button" ] && [ -e "$button" ]; then
  echo "BERTH-GUEST-WAITING power button $button"
  head -c 1 "$button" >/dev/null
  echo "BERTH-GUEST-POWER-BUTTON"
else
  echo "BERTH-GUEST-NO-POWER-BUTTON"
  while :; do sleep 3600; done
fi
poweroff -f
EOF
  chmod 0755 "$tmp/overlay/init"
  cp "$CACHE/vm/initrd.cpio.gz" "$tmp/initrd.cpio.gz"
  (cd "$tmp/overlay" && printf '%s\n' init lib lib/modules lib/modules/extra lib/modules/extra/*.ko | cpio -o -H newc --quiet | gzip -1 >>"$tmp/initrd.cpio.gz")
  rm -rf "$tmp/overlay"
  echo "$key" >"$tmp/.complete"
  rm -rf "$DEST"
  mv "$tmp" "$DEST"
  say "ready: $DEST/root.raw, $DEST/initrd.cpio.gz"
  echo "$DEST"
}

mkdir -p "$CACHE"
(
  flock -w 1800 9 || die "timed out waiting for $CACHE/.vm-image.lock"
  build
) 9>"$CACHE/.vm-image.lock"
