/**
 * Stage 1: runs as PID 1 of the new PID namespace (root of the user namespace), still seeing the host's
 * file systems. It builds the container's mount tree under ROOT, pivots into it, detaches the old root
 * and execs the container's init. The script is fixed text; everything variable comes in as arguments.
 *
 * Order matters: procfs and sysfs are mounted before the old root goes (a user namespace may mount them
 * only while a fully visible instance exists in its mount namespace). After pivot_root(".", "."), absolute
 * paths resolve in the container, so the host's umount is run through its dynamic loader, reached via an
 * fd on the old root (/proc/self/fd/7), which is closed before init starts.
 */
import fs from 'node:fs';

/**
 * Stage 0 runs as the host's root in a fresh mount namespace. It makes the tree reachable at RUNROOT (a
 * path the container's root may traverse, unlike e.g. /var/lib/machines) and mounts /run (with /run/host
 * read-only), /tmp and /dev from FSTAB0, fills /dev from a prepared template and FSTAB0DEV, applies
 * --bind/--bind-ro (as root, so bind sources only root can read work), then execs the rest of its arguments
 * (nsenter/unshare → stage 1). Mounts made here are locked in the container's mount namespace: the payload
 * can neither unmount them to look beneath nor make read-only ones writable.
 */
export const STAGE0_SCRIPT = String.raw`
set -e
FSTAB0=$1 FSTAB0DEV=$2 DEVTPL=$3 RR=$4 OWNER=$5 SYNCFD=$6 WAIT=$7 NCG=$8
shift 8
fail() { echo "berth stage0: $*" >&2; exit 126; }
# Into the machine's scope first, in every hierarchy, before anything of the container exists.
while [ "$NCG" -gt 0 ]; do echo $$ > "$1/cgroup.procs" || fail "cannot enter cgroup $1"; shift; NCG=$((NCG - 1)); done
mount -a -T "$FSTAB0" || fail "cannot set up the container's mounts"
cp -a "$DEVTPL/." "$RR/dev/" || fail "cannot fill /dev"
mount -a -T "$FSTAB0DEV" || fail "cannot set up /dev"
while [ "$1" != "--" ]; do
  case "$1" in
    bind|bind-ro)
      src=$2 dst=$RR$3
      if [ ! -e "$dst" ] && [ ! -L "$dst" ]; then
        if [ -d "$src" ]; then mkdir -p "$dst"; else mkdir -p "$(dirname "$dst")"; : > "$dst"; fi
        chown -h "$OWNER:$OWNER" "$dst"
      fi
      mount --rbind "$src" "$dst" || fail "cannot bind $src on $3"
      if [ "$1" = bind-ro ]; then mount -o remount,bind,ro "$dst" || fail "cannot make $3 read-only"; fi
      shift 3 ;;
    *) fail "unknown mount operation $1" ;;
  esac
done
shift
if [ "$WAIT" = 1 ]; then
  eval "read -r go <&$SYNCFD" || fail "launcher went away"
  [ "$go" = go ] || fail "launcher aborted the start"
fi
exec "$@"
`;

/**
 * Stage 1 runs as PID 1 of the new PID namespace (root of the user namespace) in a mount namespace the
 * user namespace owns. It mounts /proc and /sys (read-only) from FSTAB1, pivots into the tree, detaches the
 * old root and execs the container's init. procfs and sysfs are mounted before the old root goes (a user
 * namespace may mount them only while a fully visible instance exists in its mount namespace). After
 * pivot_root(".", "."), absolute paths resolve in the container, so the host's umount is run through its
 * dynamic loader, reached via an fd on the old root (/proc/self/fd/7), closed before init starts.
 */
export const STAGE1_SCRIPT = String.raw`
set -e
R=$1 FSTAB1=$2 HN=$3 SYNCFD=$4 WAIT=$5 LOADER=$6 LIBPATH=$7 UMOUNT=$8
shift 8
fail() { echo "berth stage1: $*" >&2; exit 126; }
# A fresh top mount: those inherited from stage 0 are locked, and pivot_root refuses a locked new root.
# (Not in the fstab: mount -a skips an entry whose target is already mounted from the same source.)
mount --rbind "$R" "$R" || fail "cannot bind the tree"
mount -a -T "$FSTAB1" || fail "cannot mount /proc and /sys"
hostname "$HN" || fail "cannot set the hostname"
if [ "$WAIT" = 1 ]; then
  eval "read -r go <&$SYNCFD" || fail "launcher went away"
  [ "$go" = go ] || fail "launcher aborted the start"
fi
eval "exec $SYNCFD<&-"
cd "$R"
exec 7</
pivot_root . . || fail "pivot_root failed"
H=/proc/self/fd/7
if [ -n "$LOADER" ]; then
  "$H$LOADER" --library-path "$LIBPATH" "$H$UMOUNT" --no-canonicalize -l . || fail "cannot detach the old root"
else
  "$H$UMOUNT" --no-canonicalize -l . || fail "cannot detach the old root"
fi
exec 7<&-
cd /
unset OLDPWD PWD
exec "$@"
`;

/** Read PT_INTERP of an ELF executable (undefined for static binaries). */
export function elfInterpreter(file: string): string | undefined {
  const b = fs.readFileSync(file);
  if (b.readUInt32BE(0) !== 0x7f454c46 || b[4] !== 2) throw new Error(`${file}: not a 64-bit ELF file`);
  const phoff = Number(b.readBigUInt64LE(0x20));
  const phentsize = b.readUInt16LE(0x36);
  const phnum = b.readUInt16LE(0x38);
  for (let i = 0; i < phnum; i++) {
    const o = phoff + i * phentsize;
    if (b.readUInt32LE(o) === 3) {
      const off = Number(b.readBigUInt64LE(o + 8));
      const size = Number(b.readBigUInt64LE(o + 32));
      return b.subarray(off, off + size).toString('latin1').replace(/\0+$/, '');
    }
  }
  return undefined;
}

export interface HostUmount { loader: string; libraryPath: string; umount: string }

let cachedUmount: HostUmount | undefined;

/** How to run the host's umount once the container root is in place (paths relative to the old root). */
export function hostUmount(): HostUmount {
  if (cachedUmount) return cachedUmount;
  const candidates = ['/usr/bin/umount', '/bin/umount', '/usr/sbin/umount', '/sbin/umount'];
  const bin = candidates.find((p) => fs.existsSync(p));
  if (!bin) throw new Error('umount (util-linux) not found on the host');
  const umount = fs.realpathSync(bin);
  const interp = elfInterpreter(umount);
  if (!interp) return (cachedUmount = { loader: '', libraryPath: '', umount });
  const dirs = ['/lib/x86_64-linux-gnu', '/usr/lib/x86_64-linux-gnu', '/lib/aarch64-linux-gnu', '/usr/lib/aarch64-linux-gnu',
    '/lib64', '/usr/lib64', '/lib', '/usr/lib']
    .filter((d) => fs.existsSync(d)).map((d) => fs.realpathSync(d));
  const libraryPath = [...new Set(dirs)].map((d) => `/proc/self/fd/7${d}`).join(':');
  return (cachedUmount = { loader: fs.realpathSync(interp), libraryPath, umount });
}

export interface StageArgs {
  runRoot: string;
  fstab0: string;
  fstab0Dev: string;
  fstab1: string;
  devTemplate: string;
  owner: number;
  hostname: string;
  /** cgroup directories stage 0 moves itself into first. */
  cgroups: string[];
  /** A pipe from the launcher: one "go" line releases stage 0 (maps written), the next stage 1 (veth made). */
  syncFd: number;
  waitInStage0: boolean;
  waitInStage1: boolean;
  binds: { source: string; target: string; readOnly: boolean }[];
  /** Between the stages: e.g. nsenter --user=… -- unshare --pid --mount … -- */
  namespaces: string[];
  init: string[];
}

/** argv of stage 0, which execs the namespace tools, which exec stage 1, which execs init. */
export function stageArgv(a: StageArgs): string[] {
  const u = hostUmount();
  const ops: string[] = [];
  for (const b of a.binds) ops.push(b.readOnly ? 'bind-ro' : 'bind', b.source, b.target);
  const stage1 = ['/bin/sh', '-c', STAGE1_SCRIPT, 'berth-stage1',
    a.runRoot, a.fstab1, a.hostname, String(a.syncFd), a.waitInStage1 ? '1' : '0',
    u.loader, u.libraryPath, u.umount, ...a.init];
  return ['/bin/sh', '-c', STAGE0_SCRIPT, 'berth-stage0', a.fstab0, a.fstab0Dev, a.devTemplate, a.runRoot, String(a.owner),
    String(a.syncFd), a.waitInStage0 ? '1' : '0', String(a.cgroups.length), ...a.cgroups,
    ...ops, '--', ...a.namespaces, ...stage1];
}
