#!/usr/bin/env bash
# reference-tools.sh: upstream systemd 257 (Debian 13 "trixie" builds) and 262 (Debian "sid" builds) next to
# Debian 12's own systemd 252, for interop, differential and benchmark tests. Nothing on the host is replaced: the packages are unpacked
# into a private folder and each binary is started through the dynamic loader that came with them.
#
#   scripts/reference-tools.sh install              fetch and unpack (idempotent; fast when already there)
#   scripts/reference-tools.sh run TOOL [ARG...]    run TOOL (varlinkctl, userdbctl, machinectl,
#                                                   systemd-nspawn, systemd-machined, ...) from the folder
#   scripts/reference-tools.sh machined start       start the real systemd-machined of the suite (and a system
#                                                   dbus-daemon when none answers); it listens on
#                                                   /run/systemd/machine/io.systemd.{Machine,MachineImage}
#                                                   and /run/systemd/userdb/io.systemd.Machine
#   scripts/reference-tools.sh machined stop        stop what "machined start" started (only that)
#   scripts/reference-tools.sh machined status      say whether a machined answers (product and version),
#                                                   exit 0 if so
#   scripts/reference-tools.sh scope NAME PID       move PID into machine.slice/machine-NAME.scope in every
#                                                   cgroup hierarchy (machined wants a unit-shaped cgroup)
#   scripts/reference-tools.sh path                 print the folder the packages are unpacked into
#
# Environment: BERTH_REFERENCE_SUITE (trixie: systemd 257; sid: systemd 262), BERTH_REFERENCE_ROOT (default
# /var/tmp/berth-reference for trixie, /var/tmp/berth-reference-SUITE for any other suite, so that the
# versions live side by side and each install is idempotent on its own), BERTH_REFERENCE_STATE (default
# ROOT/state; set it to run an installed root that is mounted read-only, as the booted-machine bench does).
# Needs root and Debian's package archive. These tools are used by tests only; they are never shipped.
set -euo pipefail

SUITE=${BERTH_REFERENCE_SUITE:-trixie}
if [[ $SUITE == trixie ]]; then ROOT=${BERTH_REFERENCE_ROOT:-/var/tmp/berth-reference}
else ROOT=${BERTH_REFERENCE_ROOT:-/var/tmp/berth-reference-$SUITE}; fi
TREE=$ROOT/tree
# Where machined's pid file and log go (and the bus config, when a bus is started); elsewhere with a read-only root.
STATE=${BERTH_REFERENCE_STATE:-$ROOT/state}
MACHINE_SOCKET=/run/systemd/machine/io.systemd.Machine
DBUS_SOCKET=/run/dbus/system_bus_socket
# Bump when the package list changes so that existing installs are refreshed.
STAMP_VERSION=1

# The systemd packages plus every shared library their binaries link against, all from the same suite,
# so that nothing is resolved against Debian 12's older libraries.
PACKAGES=(
  systemd systemd-container systemd-userdbd libsystemd-shared libsystemd0 libudev1 libnss-systemd
  libc6 libgcc-s1 libcap2 libacl1 libattr1 libblkid1 libmount1 libuuid1 libfdisk1 libselinux1
  libpcre2-8-0 libcrypt1 libpam0g libaudit1 libcap-ng0 libseccomp2 libapparmor1 libssl3t64 libzstd1
  liblzma5 liblz4-1 libbz2-1.0 zlib1g libkmod2 libcryptsetup12 libdevmapper1.02.1 libjson-c5
  libargon2-1 libgcrypt20 libgpg-error0 libcurl4t64
)
# Binaries that must start (with --version) for an install to count as complete.
CHECK_TOOLS=(varlinkctl userdbctl machinectl systemd-nspawn)
# sid's systemd-container ships systemd-vmspawn (test/interop/vmspawn-262.test.ts boots it); trixie's does not.
[[ $SUITE == trixie ]] || CHECK_TOOLS+=(systemd-vmspawn)

say() { printf 'reference-tools: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

apt_private() {
  apt-get \
    -o "Dir::Etc::SourceList=$ROOT/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null \
    -o "Dir::State::Lists=$ROOT/apt/lists" -o "Dir::Cache=$ROOT/apt/cache" \
    -o "Dir::State::status=$ROOT/apt/status" -o Debug::NoLocking=1 -o APT::Get::AllowUnauthenticated=false \
    "$@"
}

# The archive the host already uses (deb822 or one-line format); fall back to Debian's CDN name.
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
  echo "${m:-http://deb.debian.org/debian}"
}

loader() { echo "$TREE/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"; }
library_path() {
  local l=$TREE/usr/lib/x86_64-linux-gnu
  echo "$l:$l/systemd:$TREE/lib/x86_64-linux-gnu:$TREE/usr/lib/systemd"
}

find_tool() {
  local name=$1 dir
  for dir in usr/bin usr/lib/systemd bin usr/sbin sbin; do
    if [[ -f $TREE/$dir/$name && -x $TREE/$dir/$name ]]; then echo "$TREE/$dir/$name"; return 0; fi
  done
  return 1
}

installed() {
  [[ -f $ROOT/.installed && $(cat "$ROOT/.installed") == "$STAMP_VERSION $SUITE" && -x $(loader) ]]
}

cmd_install() {
  if installed; then return 0; fi
  [[ $(id -u) == 0 ]] || die "install needs root"
  say "installing systemd ($SUITE) into $ROOT"
  rm -rf "$TREE" "$ROOT/debs"
  mkdir -p "$ROOT/apt/lists/partial" "$ROOT/apt/cache/archives/partial" "$ROOT/debs" "$TREE" "$STATE"
  : >"$ROOT/apt/status"
  local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  [[ -r $keyring ]] || die "missing $keyring (package debian-archive-keyring)"
  echo "deb [signed-by=$keyring] $(host_mirror) $SUITE main" >"$ROOT/apt/sources.list"
  if ! apt_private update >"$ROOT/apt/update.log" 2>&1; then
    cat "$ROOT/apt/update.log" >&2
    die "apt-get update for $SUITE failed"
  fi
  # One download call for all packages; on failure retry one by one to name the package that is missing.
  if ! (cd "$ROOT/debs" && apt_private download "${PACKAGES[@]}" >"$ROOT/apt/download.log" 2>&1); then
    local p
    for p in "${PACKAGES[@]}"; do
      (cd "$ROOT/debs" && apt_private download "$p" >>"$ROOT/apt/download.log" 2>&1) ||
        die "could not download $p from $SUITE (see $ROOT/apt/download.log)"
    done
  fi
  local deb
  for deb in "$ROOT"/debs/*.deb; do dpkg-deb -x "$deb" "$TREE"; done
  [[ -x $(loader) ]] || die "no dynamic loader in $TREE"
  local tool bin
  for tool in "${CHECK_TOOLS[@]}"; do
    bin=$(find_tool "$tool") || die "no $tool after unpacking"
    "$(loader)" --library-path "$(library_path)" "$bin" --version >/dev/null 2>&1 ||
      die "$tool does not start: $("$(loader)" --library-path "$(library_path)" "$bin" --version 2>&1 | head -n 3)"
  done
  echo "$STAMP_VERSION $SUITE" >"$ROOT/.installed"
  say "installed: $("$(loader)" --library-path "$(library_path)" "$(find_tool varlinkctl)" --version | head -n 1)"
}

cmd_run() {
  [[ $# -ge 1 ]] || die "usage: run TOOL [ARG...]"
  cmd_install
  local tool=$1 bin
  shift
  bin=$(find_tool "$tool") || { say "no tool named $tool in $TREE"; exit 2; }
  exec "$(loader)" --library-path "$(library_path)" "$bin" "$@"
}

# True when a Varlink service answers GetInfo on the socket; prints its product name.
varlink_product() {
  [[ -S $1 ]] || return 1
  local out
  out=$(timeout 5 "$(loader)" --library-path "$(library_path)" "$(find_tool varlinkctl)" info "$1" 2>/dev/null) ||
    return 1
  awk -F': *' '$1 ~ /Product/ { print $2; exit }' <<<"$out"
}

# The Version line of GetInfo (e.g. "262 (262.1-1)" for machined 262); empty when it cannot be read.
varlink_version() {
  timeout 5 "$(loader)" --library-path "$(library_path)" "$(find_tool varlinkctl)" info "$1" 2>/dev/null |
    awk -F': *' '$1 ~ /Version/ { print $2; exit }'
}

bus_answers() {
  [[ -S $DBUS_SOCKET ]] && timeout 5 dbus-send --system --print-reply --dest=org.freedesktop.DBus \
    /org/freedesktop/DBus org.freedesktop.DBus.GetId >/dev/null 2>&1
}

# A process counts as running unless it is gone or a zombie (our children end up under a PID 1 that may
# reap them late, and kill -0 succeeds on zombies).
running() {
  local state
  state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ -n $state && $state != Z && $state != X ]]
}
alive() { [[ -f $1 ]] && running "$(cat "$1")"; }

start_bus() {
  if bus_answers; then return 0; fi
  command -v dbus-daemon >/dev/null || die "dbus-daemon missing (apt-get install dbus)"
  say "starting a system dbus-daemon"
  mkdir -p /run/dbus
  # A bus that died leaves its pid file and socket behind, and dbus-daemon refuses to start over them.
  rm -f /run/dbus/pid "$DBUS_SOCKET"
  # Our own config: the system bus's defaults plus the policies shipped with the suite's systemd, so that machined
  # may own org.freedesktop.machine1 even though Debian 12's systemd-container is not installed.
  cat >"$STATE/dbus-system.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <include>/usr/share/dbus-1/system.conf</include>
  <includedir>$TREE/usr/share/dbus-1/system.d</includedir>
</busconfig>
EOF
  dbus-daemon --config-file="$STATE/dbus-system.conf" --fork --print-pid=3 3>"$STATE/dbus.pid" ||
    die "dbus-daemon did not start"
  local _
  for _ in $(seq 100); do bus_answers && return 0; sleep 0.05; done
  die "dbus-daemon started but does not answer on $DBUS_SOCKET"
}

machined_start() {
  [[ $(id -u) == 0 ]] || die "machined needs root"
  cmd_install
  mkdir -p "$STATE"
  if alive "$STATE/machined.pid"; then say "machined already running (pid $(cat "$STATE/machined.pid"))"; return 0; fi
  local product
  if product=$(varlink_product "$MACHINE_SOCKET"); then
    if [[ $product == *systemd-machined* ]]; then say "a systemd-machined not started by us already serves $MACHINE_SOCKET; using it"; return 0; fi
    die "$MACHINE_SOCKET is served by '$product', not systemd-machined; stop it first"
  fi
  start_bus
  mkdir -p /run/systemd/machine /run/systemd/userdb /run/systemd/machines /var/lib/machines
  setsid "$(loader)" --library-path "$(library_path)" "$(find_tool systemd-machined)" \
    </dev/null >"$STATE/machined.log" 2>&1 &
  echo "$!" >"$STATE/machined.pid"
  local _
  for _ in $(seq 200); do
    if [[ $(varlink_product "$MACHINE_SOCKET" || true) == *systemd-machined* ]]; then
      say "systemd-machined ($SUITE) running (pid $(cat "$STATE/machined.pid")); log: $STATE/machined.log"
      return 0
    fi
    alive "$STATE/machined.pid" || break
    sleep 0.05
  done
  cat "$STATE/machined.log" >&2 || true
  machined_stop
  die "systemd-machined did not come up"
}

stop_pidfile() {
  local file=$1 pid _
  [[ -f $file ]] || return 0
  pid=$(cat "$file")
  if running "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 200); do running "$pid" || break; sleep 0.02; done
    if running "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$file"
}

machined_stop() {
  if [[ -f $STATE/machined.pid ]]; then
    stop_pidfile "$STATE/machined.pid"
    # machined leaves its sockets behind; remove them so that clients do not find a dead service.
    rm -f "$MACHINE_SOCKET" /run/systemd/machine/io.systemd.MachineImage /run/systemd/userdb/io.systemd.Machine \
      /run/systemd/resolve.hook/io.systemd.Machine
  fi
  if [[ -f $STATE/dbus.pid ]]; then
    stop_pidfile "$STATE/dbus.pid"
    rm -f /run/dbus/pid "$DBUS_SOCKET"
  fi
}

cmd_machined() {
  case ${1:-} in
    start) machined_start ;;
    stop) machined_stop ;;
    status)
      local product
      if product=$(varlink_product "$MACHINE_SOCKET"); then
        echo "$product $(varlink_version "$MACHINE_SOCKET") answers on $MACHINE_SOCKET"; else
        echo "nothing answers on $MACHINE_SOCKET"; exit 1; fi ;;
    *) die "usage: machined start|stop|status" ;;
  esac
}

cmd_scope() {
  [[ $# -eq 2 ]] || die "usage: scope NAME PID"
  local name=$1 pid=$2 hier placed=0
  [[ $pid =~ ^[0-9]+$ ]] || die "not a pid: $pid"
  [[ $name =~ ^[A-Za-z0-9._-]+$ ]] || die "not a usable machine name: $name"
  # cgroup v2 at the top (pure v2 hosts) or the v2 and name=systemd hierarchies of a hybrid host.
  for hier in /sys/fs/cgroup /sys/fs/cgroup/unified /sys/fs/cgroup/systemd; do
    [[ -f $hier/cgroup.procs ]] || continue
    mkdir -p "$hier/machine.slice/machine-$name.scope"
    echo "$pid" >"$hier/machine.slice/machine-$name.scope/cgroup.procs"
    placed=1
  done
  [[ $placed == 1 ]] || die "no writable cgroup hierarchy found under /sys/fs/cgroup"
}

usage() { sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

case ${1:-} in
  install) cmd_install ;;
  run) shift; cmd_run "$@" ;;
  machined) shift; cmd_machined "$@" ;;
  scope) shift; cmd_scope "$@" ;;
  path) echo "$TREE" ;;
  *) usage ;;
esac
