#!/usr/bin/env bash
# rootfs.sh: test images for berth's container and VM tests, built from this machine's Debian packages
# into a cache folder and rebuilt only when missing or when this script's format version changes.
#
#   scripts/rootfs.sh busybox   CACHE/busybox/rootfs: busybox-static with all applet links, /init,
#                               /usr/bin/sd-notify (static), /etc/os-release (ID=busybox)   (~1 s)
#   scripts/rootfs.sh debian    CACHE/debian/rootfs: Debian 12 minbase with systemd and dbus, via
#                               debootstrap; empty /etc/machine-id                          (~1 min, 240 MB)
#   scripts/rootfs.sh vm        CACHE/vm/: vmlinuz and vmlinux (uncompressed ELF, for fast PVH direct
#                               boot under TCG) from Debian's kernel package, unpacked without installing
#                               it, and initrd.cpio.gz, a busybox initramfs that loads virtio modules
#   scripts/rootfs.sh path      print the cache folder
# Several targets may be named at once; with none, busybox and vm are built.
# Environment: BERTH_CACHE (default /var/tmp/berth-cache), BERTH_DEBIAN_MIRROR (default: the host's).
set -euo pipefail

CACHE=${BERTH_CACHE:-/var/tmp/berth-cache}
# Format versions: bump one to rebuild that cached image after changing what this script puts into it.
BUSYBOX_FORMAT=3
DEBIAN_FORMAT=2
VM_FORMAT=4

say() { printf 'rootfs: %s\n' "$*" >&2; }
die() { say "FAILED: $*"; exit 1; }

need() {
  local c
  for c in "$@"; do command -v "$c" >/dev/null || die "$c is missing; run scripts/setup.sh first"; done
}

# is_done DIR VALUE: true when DIR was completed with the same format and inputs.
is_done() { [[ -f $1/.complete && $(cat "$1/.complete") == "$2" ]]; }

# The host's Debian archive (deb822 or one-line sources), else Debian's CDN name.
host_mirror() {
  local m=""
  if [[ -r /etc/apt/sources.list.d/debian.sources ]]; then
    m=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i ~ /\/debian\/?$/) { print $i; exit } }' \
      /etc/apt/sources.list.d/debian.sources)
  fi
  if [[ -z $m && -r /etc/apt/sources.list ]]; then
    m=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; exit } }' \
      /etc/apt/sources.list)
  fi
  echo "${BERTH_DEBIAN_MIRROR:-${m:-http://deb.debian.org/debian}}"
}

# A static sd_notify sender for guests without systemd: sends its arguments, joined by newlines, as one
# datagram to $NOTIFY_SOCKET ("@name" = abstract socket).
build_sd_notify() {
  local out=$1 src
  src=$(mktemp --suffix=.c)
  cat >"$src" <<'EOF'
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv) {
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !*path) { fputs("sd-notify: NOTIFY_SOCKET is not set\n", stderr); return 1; }
    if (argc < 2) { fputs("usage: sd-notify READY=1 [STATUS=...]...\n", stderr); return 2; }
    char msg[4096];
    size_t len = 0;
    for (int i = 1; i < argc; i++) {
        size_t n = strlen(argv[i]);
        if (len + n + 1 >= sizeof msg) { fputs("sd-notify: message too long\n", stderr); return 2; }
        if (i > 1) msg[len++] = '\n';
        memcpy(msg + len, argv[i], n);
        len += n;
    }
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    size_t plen = strlen(path);
    if (plen >= sizeof sa.sun_path) { fputs("sd-notify: socket path too long\n", stderr); return 1; }
    memcpy(sa.sun_path, path, plen);
    socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen + (path[0] == '@' ? 0 : 1));
    if (path[0] == '@') sa.sun_path[0] = '\0';
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || sendto(fd, msg, len, MSG_NOSIGNAL, (struct sockaddr *)&sa, salen) < 0) {
        perror("sd-notify");
        return 1;
    }
    return 0;
}
EOF
  gcc -O2 -static -o "$out" "$src" || { rm -f "$src"; die "could not build the static sd-notify helper"; }
  rm -f "$src"
}

# Fills DIR with busybox and a link for each applet, at the paths busybox itself lists.
install_busybox() {
  local dir=$1 bb=/bin/busybox applet rel
  [[ -x $bb ]] || die "no static busybox at /bin/busybox (package busybox-static)"
  file_is_static "$bb" || die "/bin/busybox is not the static build (install busybox-static)"
  mkdir -p "$dir/bin" "$dir/sbin" "$dir/usr/bin" "$dir/usr/sbin"
  install -m 0755 "$bb" "$dir/bin/busybox"
  while read -r applet; do
    [[ -n $applet && $applet != bin/busybox ]] || continue
    [[ -e $dir/$applet || -L $dir/$applet ]] && continue
    case $applet in
      bin/*|sbin/*) rel=../bin/busybox ;;
      usr/bin/*|usr/sbin/*) rel=../../bin/busybox ;;
      *) continue ;;
    esac
    ln -s "$rel" "$dir/$applet"
  done < <("$bb" --list-full)
}

file_is_static() { ! LC_ALL=C readelf -l "$1" 2>/dev/null | grep -q 'INTERP'; }

busybox_version() { { /bin/busybox 2>&1 || true; } | sed -n '1s/^BusyBox v\([0-9][0-9.]*\).*/\1/p'; }

# ---------------------------------------------------------------------------------------------------------
build_busybox() {
  local dest=$CACHE/busybox key
  key="$BUSYBOX_FORMAT $(dpkg-query -W -f='${Version}' busybox-static 2>/dev/null || echo unknown)"
  if is_done "$dest" "$key"; then say "busybox rootfs present: $dest/rootfs"; return 0; fi
  need gcc readelf
  say "building busybox rootfs"
  local tmp=$CACHE/.busybox.tmp
  rm -rf "$tmp"
  mkdir -p "$tmp/rootfs"
  local r=$tmp/rootfs
  install_busybox "$r"
  mkdir -p "$r"/{dev,proc,sys,run,tmp,root,etc,var/tmp,data} "$r/run/host"
  chmod 1777 "$r/tmp" "$r/var/tmp"
  chmod 0700 "$r/root"
  build_sd_notify "$r/usr/bin/sd-notify"
  local v
  v=$(busybox_version)
  cat >"$r/etc/os-release" <<EOF
NAME="BusyBox"
ID=busybox
VERSION_ID=${v:-1}
PRETTY_NAME="BusyBox ${v:-} (berth test image)"
EOF
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$r/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$r/etc/group"
  printf 'busybox\n' >"$r/etc/hostname"
  : >"$r/etc/machine-id"
  # /init: run the arguments if any; otherwise announce readiness and wait for a stop signal
  # (SIGTERM, SIGINT, or SIGRTMIN+3 as systemd's container interface uses for "halt").
  cat >"$r/init" <<'EOF'
#!/bin/sh
# berth test container init
if [ "$#" -gt 0 ]; then exec "$@"; fi
trap 'exit 0' TERM INT 37
if [ -n "$NOTIFY_SOCKET" ]; then
  /usr/bin/sd-notify READY=1 "STATUS=busybox container up" || true
fi
# "wait" returns as soon as a trapped signal arrives; a background job needs /dev/null for its stdin.
if [ -e /dev/null ]; then
  while :; do sleep 3600 & wait $!; done
else
  while :; do sleep 1; done
fi
EOF
  chmod 0755 "$r/init"
  echo "$key" >"$tmp/.complete"
  rm -rf "$dest"
  mv "$tmp" "$dest"
  say "busybox rootfs ready: $dest/rootfs ($(du -sh "$dest/rootfs" | cut -f1))"
}

# ---------------------------------------------------------------------------------------------------------
build_debian() {
  local dest=$CACHE/debian suite=bookworm key mirror
  key="$DEBIAN_FORMAT $suite minbase systemd,systemd-sysv,dbus"
  if is_done "$dest" "$key"; then say "debian rootfs present: $dest/rootfs"; return 0; fi
  need debootstrap
  mirror=$(host_mirror)
  local tmp=$CACHE/.debian.tmp
  rm -rf "$tmp"
  mkdir -p "$tmp"
  say "debootstrap $suite (minbase + systemd, dbus) from $mirror; this takes a minute"
  if ! debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus "$suite" "$tmp/rootfs" "$mirror" \
    >"$tmp/debootstrap.log" 2>&1; then
    tail -n 20 "$tmp/debootstrap.log" >&2
    die "debootstrap failed (log: $tmp/debootstrap.log)"
  fi
  local r=$tmp/rootfs
  # An empty machine-id lets systemd take the id from $container_uuid; dbus's copy would win otherwise.
  : >"$r/etc/machine-id"
  rm -f "$r/var/lib/dbus/machine-id"
  rm -f "$r"/var/cache/apt/archives/*.deb
  printf 'debian\n' >"$r/etc/hostname"
  mv "$tmp/debootstrap.log" "$tmp/build.log"
  echo "$key" >"$tmp/.complete"
  rm -rf "$dest"
  mv "$tmp" "$dest"
  say "debian rootfs ready: $dest/rootfs ($(du -sh "$dest/rootfs" | cut -f1))"
}

# ---------------------------------------------------------------------------------------------------------
# Kernel modules the guest loads, with their dependencies resolved from each module's "depends=" field.
VM_MODULES=(virtio_pci virtio_console virtio_blk virtio_rng button evdev fuse virtiofs)

kernel_package() {
  # linux-image-amd64 is a metapackage; its dependency names the real image package.
  { apt-cache depends linux-image-amd64 2>/dev/null || true; } |
    awk '/Depends: linux-image-[0-9]/ && !found { print $2; found = 1 }'
}

fetch_kernel_deb() {
  local debs=$1 pkg
  pkg=$(kernel_package)
  if [[ -z $pkg ]]; then
    say "no linux-image-amd64 in the package lists; running apt-get update"
    apt-get -q -o DPkg::Lock::Timeout=600 update >/dev/null 2>&1 || die "apt-get update failed"
    pkg=$(kernel_package)
    [[ -n $pkg ]] || die "cannot find the package behind linux-image-amd64"
  fi
  mkdir -p "$debs"
  if ! compgen -G "$debs/${pkg}_*.deb" >/dev/null; then
    say "downloading $pkg (not installed, only unpacked)"
    if ! (cd "$debs" && apt-get -q download "$pkg" >/dev/null 2>&1); then
      apt-get -q -o DPkg::Lock::Timeout=600 update >/dev/null 2>&1 || die "apt-get update failed"
      (cd "$debs" && apt-get -q download "$pkg" >/dev/null) || die "apt-get download $pkg failed"
    fi
  fi
  compgen -G "$debs/${pkg}_*.deb" | sed -n 1p
}

# Prints the module files to load, dependencies first, for the kernel tree under $1 (lib/modules/VER).
resolve_modules() {
  local moddir=$1 f name
  declare -A path=() seen=()
  while IFS= read -r f; do
    name=$(basename "$f" .ko)
    path[${name//-/_}]=$f
  done < <(find "$moddir" -name '*.ko')
  visit() {
    local n=${1//-/_} deps d
    [[ -n ${seen[$n]:-} ]] && return 0
    seen[$n]=1
    [[ -n ${path[$n]:-} ]] || return 0 # built into the kernel
    deps=$(LC_ALL=C strings "${path[$n]}" | sed -n 's/^depends=//p' | sed -n 1p)
    local IFS=,
    for d in $deps; do [[ -n $d ]] && visit "$d"; done
    echo "${path[$n]}"
  }
  for name in "${VM_MODULES[@]}"; do visit "$name"; done
}

build_vm() {
  local dest=$CACHE/vm deb key
  need dpkg-deb cpio gzip python3
  deb=$(fetch_kernel_deb "$CACHE/debs")
  key="$VM_FORMAT $(basename "$deb") $(dpkg-query -W -f='${Version}' busybox-static 2>/dev/null || echo unknown)"
  if is_done "$dest" "$key"; then say "VM kernel and initramfs present: $dest"; return 0; fi
  say "building VM kernel and initramfs from $(basename "$deb")"
  local tmp=$CACHE/.vm.tmp
  rm -rf "$tmp"
  mkdir -p "$tmp/pkg" "$tmp/initrd"
  # Only the kernel image and the driver directories the guest's modules (and their dependencies) live in.
  dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp/pkg" --wildcards './boot/*' \
    './lib/modules/*/kernel/drivers/virtio/*' './lib/modules/*/kernel/drivers/char/*' \
    './lib/modules/*/kernel/drivers/block/*'
  local vmlinuz kver
  vmlinuz=$(compgen -G "$tmp/pkg/boot/vmlinuz-*" | sed -n 1p) || die "no vmlinuz in $deb"
  kver=${vmlinuz##*/vmlinuz-}
  cp "$vmlinuz" "$tmp/vmlinuz"
  # The bzImage carries an XZ-compressed ELF; unpacked, qemu boots it through its PVH entry point and the
  # guest skips the decompressor, the slowest part of booting under TCG.
  python3 - "$tmp/vmlinuz" "$tmp/vmlinux" <<'EOF'
import lzma, sys
data = open(sys.argv[1], 'rb').read()
start = data.find(b'\xfd7zXZ\x00')
if start < 0:
    sys.exit('no XZ stream in the kernel image')
elf = lzma.LZMADecompressor().decompress(data[start:])
if elf[:4] != b'\x7fELF':
    sys.exit('the XZ stream in the kernel image is not an ELF file')
open(sys.argv[2], 'wb').write(elf)
EOF
  echo "$kver" >"$tmp/kernel-version"
  cp "$tmp/pkg/boot/config-$kver" "$tmp/config" 2>/dev/null || true

  # initramfs: static busybox, the virtio modules in load order, and /init.
  local r=$tmp/initrd m
  install_busybox "$r"
  mkdir -p "$r"/{dev,proc,sys,run,tmp,etc,lib/modules}
  : >"$r/lib/modules/load-order"
  while IFS= read -r m; do
    cp "$m" "$r/lib/modules/"
    basename "$m" >>"$r/lib/modules/load-order"
  done < <(resolve_modules "$tmp/pkg/lib/modules/$kver")
  [[ -s $r/lib/modules/load-order ]] || die "no virtio modules found in $deb"
  printf 'NAME="BusyBox"\nID=busybox\nPRETTY_NAME="BusyBox (berth VM test initramfs)"\n' >"$r/etc/os-release"
  cat >"$r/init" <<'EOF'
#!/bin/busybox sh
# berth test VM init. Kernel command line options:
#   berth.hold=1    stay up after READY (until powered off); otherwise power off right away
#   berth.notify=N  name of the virtio-serial port for sd_notify-style lines (default: any port whose name
#                   ends in "notify")
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "BERTH-GUEST-BOOTED uptime=$(cut -d' ' -f1 /proc/uptime)"
echo "BERTH-GUEST-CMDLINE $(cat /proc/cmdline)"
# SMBIOS type 11 strings (e.g. io.systemd.credential:NAME=VALUE): a 5-byte header, then NUL-separated text.
for f in /sys/firmware/dmi/entries/11-*/raw; do
  [ -e "$f" ] || continue
  tail -c +6 "$f" | tr '\0' '\n' | grep -v '^$' | sed 's/^/BERTH-GUEST-SMBIOS11 /'
done
while read -r m; do insmod "/lib/modules/$m" 2>/dev/null || echo "BERTH-GUEST-INSMOD-FAILED $m"; done </lib/modules/load-order
want=""
for o in $(cat /proc/cmdline); do case $o in berth.notify=*) want=${o#berth.notify=} ;; esac; done
for n in /sys/class/virtio-ports/*/name; do
  [ -e "$n" ] || continue
  name=$(cat "$n")
  if [ -n "$want" ]; then
    [ "$name" = "$want" ] || continue
  else
    case $name in *notify) ;; *) continue ;; esac
  fi
  printf 'READY=1\nSTATUS=busybox guest up\n' >"/dev/$(basename "$(dirname "$n")")"
done
echo "BERTH-GUEST-READY uptime=$(cut -d' ' -f1 /proc/uptime)"
if grep -q 'berth.hold=1' /proc/cmdline; then
  # No ACPI handling here: the launcher ends a held guest with QMP "quit".
  while :; do sleep 3600; done
fi
poweroff -f
EOF
  chmod 0755 "$r/init"
  (cd "$r" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet | gzip -1 >"$tmp/initrd.cpio.gz")
  rm -rf "$tmp/pkg" "$tmp/initrd"
  echo "$key" >"$tmp/.complete"
  rm -rf "$dest"
  mv "$tmp" "$dest"
  say "VM files ready in $dest: vmlinux ($(du -h "$dest/vmlinux" | cut -f1)), vmlinuz, initrd.cpio.gz ($(du -h "$dest/initrd.cpio.gz" | cut -f1)), kernel $kver"
}

# ---------------------------------------------------------------------------------------------------------
# One builder per target at a time, also across concurrent runs of this script.
with_lock() {
  local target=$1
  shift
  mkdir -p "$CACHE"
  (
    flock -w 1800 9 || die "timed out waiting for the lock on $CACHE/.$target.lock"
    "$@"
  ) 9>"$CACHE/.$target.lock"
}

[[ $# -gt 0 ]] || set -- busybox vm
for target in "$@"; do
  case $target in
    busybox) with_lock busybox build_busybox ;;
    debian) with_lock debian build_debian ;;
    vm) with_lock vm build_vm ;;
    path) echo "$CACHE" ;;
    *) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
  esac
done
