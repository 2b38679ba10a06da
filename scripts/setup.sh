#!/usr/bin/env bash
# setup.sh: everything a fresh Debian 12 machine (root) needs to build berth and run all of its tests.
# Idempotent and quick when everything is present. Steps:
#   1. Debian packages the tests use (apt-get update only when something is missing)
#   2. glibc NSS: "systemd" for passwd and group in /etc/nsswitch.conf; the unprivileged user berth-test
#   3. upstream systemd 257 and 262 tools, each in a private folder of its own (scripts/reference-tools.sh
#      install, and the same with BERTH_REFERENCE_SUITE=sid)
#   4. test root filesystems and the VM kernel/initramfs (scripts/rootfs.sh busybox vm debian; the
#      Debian tree, for the real systemd container test, is skipped with BERTH_SETUP_DEBIAN=0), and the GPT
#      disk image systemd-vmspawn boots (scripts/vm-image.sh)
#   5. npm dependencies (npm ci when the lockfile changed), npm run build, the C load generator
# Environment: BERTH_CACHE (default /var/tmp/berth-cache), BERTH_REFERENCE_ROOT (the 257 folder; 262 always goes to its default), BERTH_SETUP_DEBIAN=0.
set -euo pipefail

cd "$(dirname "$0")/.."
started_ms=$(($(date +%s%N) / 1000000))

step() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: FAILED: %s\n' "$*" >&2; exit 1; }
trap 'die "line $LINENO: $BASH_COMMAND"' ERR

[[ $(id -u) == 0 ]] || die "run as root (the tests need namespaces, cgroups and /run/systemd)"
[[ -r /etc/debian_version ]] || die "this script is for Debian 12 (bookworm)"

# Packages and why the tests need them.
APT_PACKAGES=(
  varlink-go        # varlink-go-certification, the reference Varlink peer
  systemd-userdbd   # userdbctl 252, a real client of io.systemd.UserDatabase
  libnss-systemd    # nss-systemd: getent passwd resolves machine users through /run/systemd/userdb
  systemd           # systemd-socket-activate, systemd-analyze (normally present)
  dbus              # dbus-daemon, for the reference systemd-machined 257
  systemd-container # machinectl 252, a real client of org.freedesktop.machine1 on D-Bus
  libnss-mymachines # nss-mymachines 252: getent hosts NAME asks org.freedesktop.machine1 for addresses
  socat             # ad-hoc socket plumbing in tests
  openssh-server    # sshd: the berthctl -H test starts a private one on 127.0.0.1 (never the system service)
  busybox-static    # the test container and VM guest userland
  cpio              # packing the VM initramfs
  e2fsprogs         # mkfs.ext4 -d: the file system of the disk image systemd-vmspawn boots (scripts/vm-image.sh)
  qemu-system-x86   # VM tests under TCG
  qemu-utils        # qemu-img
  swtpm             # software TPM for VM launch tests
  ovmf              # UEFI firmware for the VM image-boot test
  debootstrap       # Debian 12 root filesystem with systemd (scripts/rootfs.sh debian)
  iproute2 util-linux procps   # ip, unshare/nsenter/flock, ps -o machine
  gcc libc6-dev     # the load generator and the static sd_notify helper
  python3           # unpacking the kernel image into an ELF vmlinux for PVH boot
  xz-utils ca-certificates debian-archive-keyring
)

# ---------------------------------------------------------------------------------------------------------
# 1. Debian packages
missing=()
for p in "${APT_PACKAGES[@]}"; do
  [[ $(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true) == "ii " ]] || missing+=("$p")
done
if ((${#missing[@]})); then
  step "installing ${#missing[@]} Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt_opts=(-o DPkg::Lock::Timeout=600 -o Acquire::Retries=3)
  # The package lists of a fresh machine are stale or absent: refresh them first, retrying while another
  # apt run holds the lists lock.
  for try in 1 2 3 4 5 6; do
    if apt-get "${apt_opts[@]}" -q update >/tmp/berth-apt-update.log 2>&1; then break; fi
    ((try < 6)) || { cat /tmp/berth-apt-update.log >&2; die "apt-get update failed"; }
    sleep 10
  done
  apt-get "${apt_opts[@]}" -q -y --no-install-recommends install "${missing[@]}" >/tmp/berth-apt-install.log 2>&1 ||
    { tail -n 30 /tmp/berth-apt-install.log >&2; die "apt-get install failed (log: /tmp/berth-apt-install.log)"; }
  # libnss-mymachines' postinst puts mymachines into the host's hosts: line; the tests bind a copy with it
  # in their own mount namespace instead, so the host's resolver stays as it was.
  if [[ " ${missing[*]} " == *" libnss-mymachines "* ]]; then sed -E -i '/^hosts:/ s/ mymachines( |$)/\1/' /etc/nsswitch.conf; fi
else
  step "Debian packages present"
fi

# ---------------------------------------------------------------------------------------------------------
# 2. NSS and the test user
nss_changed=0
for db in passwd group; do
  if ! grep -Eq "^${db}:.*[[:space:]]systemd([[:space:]]|$)" /etc/nsswitch.conf; then
    if grep -Eq "^${db}:" /etc/nsswitch.conf; then
      sed -i -E "s/^(${db}:.*)$/\1 systemd/" /etc/nsswitch.conf
    else
      printf '%s:\tfiles systemd\n' "$db" >>/etc/nsswitch.conf
    fi
    nss_changed=1
  fi
done
if ((nss_changed)); then step "added systemd to passwd and group in /etc/nsswitch.conf"; fi
if ! getent passwd berth-test >/dev/null; then
  useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
    --comment "berth tests (unprivileged)" berth-test
  step "created system user berth-test (uid $(id -u berth-test))"
fi

# ---------------------------------------------------------------------------------------------------------
# 3. upstream systemd 257 (trixie) and 262 (sid) tools, side by side
step "reference tools (systemd 257)"
BERTH_REFERENCE_SUITE=trixie bash scripts/reference-tools.sh install
step "reference tools (systemd 262)"
env -u BERTH_REFERENCE_ROOT BERTH_REFERENCE_SUITE=sid bash scripts/reference-tools.sh install

# ---------------------------------------------------------------------------------------------------------
# 4. test root filesystems, VM kernel and initramfs
targets=(busybox vm)
if [[ ${BERTH_SETUP_DEBIAN:-1} == 1 ]]; then targets+=(debian); fi
step "test images: ${targets[*]}"
bash scripts/rootfs.sh "${targets[@]}"
bash scripts/vm-image.sh >/dev/null
if [[ ${BERTH_SETUP_DEBIAN:-1} == 1 ]]; then
  # The Debian tree as a systemd host (systemd-container, userdbd, NSS modules) and its libvirt variant,
  # booted by test/system/: built here once so the tests never wait for apt; cached, each takes milliseconds.
  step "test images: systemd host tree, libvirt host tree"
  bash scripts/systemd-host-tree.sh >/dev/null
  bash scripts/libvirt-host-tree.sh >/dev/null
fi

# ---------------------------------------------------------------------------------------------------------
# 5. npm, TypeScript build, load generator
stamp=node_modules/.berth-setup-stamp
want=$({ cat package.json; cat package-lock.json 2>/dev/null || true; } | sha256sum | cut -d' ' -f1)
if [[ -d node_modules && -f $stamp && $(cat "$stamp") == "$want" ]]; then
  step "npm dependencies present"
else
  if [[ -f package-lock.json ]]; then
    step "npm ci"
    npm ci --no-audit --no-fund --loglevel=error
  else
    step "npm install"
    npm install --no-audit --no-fund --loglevel=error
  fi
  echo "$want" >"$stamp"
fi
node -e "require('koffi')" || die "koffi does not load (its prebuilt binary for this platform is missing)"

step "npm run build"
npm run --silent build
step "load generator"
bash bench/build-loadgen.sh

trap - ERR
elapsed_ms=$(($(date +%s%N) / 1000000 - started_ms))
step "done in $((elapsed_ms / 1000)).$(printf '%03d' $((elapsed_ms % 1000))) s"
