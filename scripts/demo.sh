#!/usr/bin/env bash
# npm run demo: berth end to end, with the tools people already use.
#
# It starts berthd (socket-activated by berth-activate), launches a busybox container in its own
# user namespace with berth-spawn, and shows it with berthctl, its users with the real userdbctl
# (Debian's 252 and upstream 257) and getent, and its processes with `ps -o user,group,machine`;
# then it stops the container and shows that nothing is left.
#
# Everything happens in a private mount namespace whose /run/systemd is a fresh tmpfs: berth serves
# the real paths that userdbctl, nss-systemd and ps read, without touching the host's /run/systemd
# (where a systemd-machined may be running). The namespace also gets its own /run/dbus with a system
# dbus-daemon the demo starts (and stops): berthd serves org.freedesktop.machine1 there, and the real
# machinectl (Debian's 252) lists and shows the container over D-Bus.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

if [[ ${1:-} != --inner ]]; then
  [[ $(id -u) == 0 ]] || { echo "demo: needs root (namespaces, cgroups, /run/systemd)" >&2; exit 1; }
  [[ -f dist/bin/berthd.mjs ]] || { echo "demo: run 'npm run build' first (npm run demo does)" >&2; exit 1; }
  bash scripts/rootfs.sh busybox
  exec unshare --mount --propagation private "$0" --inner
fi

ROOTFS=$(bash scripts/rootfs.sh path)/busybox/rootfs
WORK=$(mktemp -d /var/tmp/berth-demo.XXXXXX)
chmod 755 "$WORK"
NAME=demo
BERTHCTL=(node "$REPO/dist/bin/berthctl.mjs")
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
cleanup() {
  [[ -n ${SPAWN_PID:-} ]] && kill -TERM "$SPAWN_PID" 2>/dev/null && wait "$SPAWN_PID" 2>/dev/null
  [[ -n ${ACT_PID:-} ]] && kill -TERM "$ACT_PID" 2>/dev/null && wait "$ACT_PID" 2>/dev/null
  [[ -n ${BUS_PID:-} ]] && kill -TERM "$BUS_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

# wait_for DESCRIPTION SECONDS COMMAND…: polls COMMAND until it succeeds, with a deadline.
wait_for() {
  local what=$1 deadline=$(( $(date +%s) + $2 )); shift 2
  until "$@" >/dev/null 2>&1; do
    (( $(date +%s) < deadline )) || { echo "demo: timed out waiting for $what" >&2; exit 1; }
    sleep 0.1
  done
}

mount -t tmpfs -o mode=755 tmpfs /run/systemd
mkdir -p /run/dbus && mount -t tmpfs -o mode=755 tmpfs /run/dbus
# -U shifts the tree's ownership in place: give the container its own copy.
cp -a "$ROOTFS" "$WORK/rootfs"

step "dbus-daemon: a system bus of the demo's own, with berth's policy for org.freedesktop.machine1"
cat >"$WORK/system.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <include>/usr/share/dbus-1/system.conf</include>
  <include>$REPO/units/dbus/org.freedesktop.machine1.conf</include>
  <pidfile>$WORK/dbus.pid</pidfile>
</busconfig>
EOF
dbus-daemon --config-file="$WORK/system.conf" --fork --print-pid=3 3>"$WORK/bus.pid" 2>/dev/null
BUS_PID=$(cat "$WORK/bus.pid")
wait_for "the system bus" 10 test -S /run/dbus/system_bus_socket
echo "dbus-daemon $BUS_PID on /run/dbus/system_bus_socket"

step "berth-activate: the registry sockets, berthd starts on the first connection"
# berthd serves org.freedesktop.machine1 on the demo's bus (BERTH_DBUS, its --dbus default, whatever the caller set).
BERTH_DBUS=yes node "$REPO/dist/src/server/berth-activate.js" --runtime-dir /run --idle-exit 30 2>"$WORK/berthd.log" &
ACT_PID=$!
wait_for "the registry socket" 10 test -S /run/systemd/machine/io.systemd.Machine
ls -l /run/systemd/machine/ /run/systemd/userdb/

step "berth-spawn: a busybox container in its own user namespace (-U picks a UID range as nspawn does)"
node "$REPO/dist/bin/berth-spawn.mjs" -D "$WORK/rootfs" -M "$NAME" -U --register=yes \
  --stop-timeout=5 -- /bin/sh -c 'touch /made-by-the-container; echo "hello from PID $$ inside"; exec /init' &
SPAWN_PID=$!
wait_for "the container to register" 60 "${BERTHCTL[@]}" status "$NAME"

step "berthctl list"
"${BERTHCTL[@]}" list
step "berthctl status $NAME"
"${BERTHCTL[@]}" status "$NAME"
step "berthctl users $NAME (the UID and GID ranges of its user namespace)"
"${BERTHCTL[@]}" users "$NAME"
BASE=$("${BERTHCTL[@]}" users "$NAME" --json=short | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s)[0].hostBase))')
step "berthctl uid-owner $BASE"
"${BERTHCTL[@]}" uid-owner "$BASE"

# machinectl runs only where /run/systemd/system exists ("booted with systemd"); it is made just for these
# two calls, as berthd would otherwise take it to mean that systemd is PID 1 and should make scopes.
# berthd takes the name once its Varlink sockets serve; before that the bus would try to activate machined.
wait_for "berthd on the system bus" 10 sh -c 'dbus-send --system --print-reply --dest=org.freedesktop.DBus / \
  org.freedesktop.DBus.NameHasOwner string:org.freedesktop.machine1 | grep -q "boolean true"'
mkdir /run/systemd/system
step "machinectl list (Debian's machinectl 252, over D-Bus: berthd owns org.freedesktop.machine1)"
machinectl --no-pager list || true
step "machinectl status $NAME (no systemd on this bus: machinectl says so in one line for the unit's cgroup)"
machinectl --no-pager status "$NAME" || true
rmdir /run/systemd/system

step "userdbctl user vu-$NAME-0 (Debian's userdbctl 252)"
userdbctl user "vu-$NAME-0" || true
step "userdbctl --output=json user $BASE (upstream userdbctl 257)"
bash scripts/reference-tools.sh run userdbctl --output=json user "$BASE" || true
step "getent passwd vu-$NAME-0 and getent group $BASE (glibc NSS through nss-systemd)"
getent passwd "vu-$NAME-0" || true
getent group "$BASE" || true

step "ps -o user,group,machine for the container's processes"
SCOPE=/sys/fs/cgroup/unified/machine.slice/machine-$NAME.scope
PIDS=$(find "$SCOPE" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -un | paste -sd, -)
ps -o pid,user,group,machine,comm -p "$PIDS"
step "stat -c '%U %G %n' of a file the container created"
stat -c '%U %G %n' "$WORK/rootfs/made-by-the-container"

step "stop the container (SIGTERM to berth-spawn: SIGRTMIN+3 to its PID 1, then cleanup)"
kill -TERM "$SPAWN_PID"
wait "$SPAWN_PID" || true
SPAWN_PID=
wait_for "the machine to disappear" 10 sh -c "! '${BERTHCTL[0]}' '${BERTHCTL[1]}' status '$NAME'"
"${BERTHCTL[@]}" list
ls "$SCOPE" 2>/dev/null && echo "scope still there" || echo "scope removed"
kill -TERM "$BUS_PID" && BUS_PID= && echo "dbus-daemon stopped"
step "done"
