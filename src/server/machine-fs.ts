/**
 * Files between the host and a container, for both machine bindings (through machine-operations.ts):
 * CopyTo/CopyFrom and BindMount, with machined 262's rules and errors. Paths inside the machine are
 * resolved below the machine's root as the machine sees it (openat2 RESOLVE_IN_ROOT on
 * /proc/LEADER/root), so `..` and absolute symlinks stay inside the machine; the copy itself runs in a
 * child process (copy-worker.ts) so a long one blocks nobody, and a bind mount is made by a short-lived
 * single-threaded helper (perl, which Debian always has) that joins the leader's mount namespace.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { machineRoot, type Machine } from './registry/machine.js';
import { machineUidShift } from './registry/metadata.js';
import { O_CLOEXEC, O_DIRECTORY, O_PATH, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, openat2 } from '../domain/libc.js';

const EADDRNOTAVAIL = 99;
const EINVAL = 22;
const ENXIO = 6;
const EIO = 5;
const ESRCH = 3;

/** At most this many copies run at once, as machined's limit (each is a child process). */
export const COPIES_MAX = 64;
let copiesRunning = 0;

/** How a copy or mount failed: an errno, and whether it failed before the work began (machined words those differently on D-Bus). */
export type FsFailure = { errno: number; setup: boolean } | { error: 'io.systemd.Machine.NotSupported' | 'io.systemd.Machine.TooManyOperations' };
export type FsResult = { ok: true } | { ok: false; failure: FsFailure };

export interface CopyRequest {
  /** `to`: host source into the machine; `from`: machine source onto the host. */
  direction: 'to' | 'from';
  source: string;
  destination: string;
  replace: boolean;
}

export interface BindRequest {
  source: string;
  destination: string;
  readOnly: boolean;
  mkdir: boolean;
}

const done: FsResult = { ok: true };
const setupFailure = (errno: number): FsResult => ({ ok: false, failure: { errno, setup: true } });
const copyFailure = (errno: number): FsResult => ({ ok: false, failure: { errno, setup: false } });
const errnoOf = (e: unknown): number => Math.abs((e as NodeJS.ErrnoException).errno ?? EIO);

/** Whether copies, bind mounts and the like apply to a machine: containers only, as in machined. */
export const hasFiles = (m: Pick<Machine, 'class'>): boolean => m.class === 'container';

/** The last component of an absolute path, or undefined for `/` (which has none). */
function fileName(p: string): string | undefined {
  const trimmed = p.replace(/\/+$/, '');
  return trimmed === '' ? undefined : path.posix.basename(trimmed);
}
const parentOf = (p: string) => path.posix.dirname(p.replace(/\/+$/, ''));

/** The copy worker beside this code, under the name the build gave it. */
function workerFile(): string {
  const here = fileURLToPath(import.meta.url);
  return path.join(path.dirname(here), here.endsWith('.mjs') ? 'berthd-copy-worker.mjs' : 'copy-worker.js');
}

/** The host parent directory of `p`, as a descriptor (host paths are the caller's, followed as given). */
function openHostParent(p: string): number {
  return fs.openSync(parentOf(p), O_PATH | O_DIRECTORY | O_CLOEXEC);
}

/** The machine's parent directory of `p`, resolved below the machine's root, never leaving it. */
function openMachineParent(m: Machine, p: string): number {
  const root = fs.openSync(machineRoot(m), O_PATH | O_DIRECTORY | O_CLOEXEC);
  try {
    const rel = parentOf(p).replace(/^\/+/, '') || '.';
    const fd = openat2(root, rel, O_PATH | O_DIRECTORY, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
    if (fd < 0) throw Object.assign(new Error('openat2'), { errno: fd });
    return fd;
  } finally {
    fs.closeSync(root);
  }
}

/** Run the copy worker on two parent descriptors; resolves with the errno it reports (0 when done). */
function runWorker(srcDir: number, dstDir: number, job: { srcName: string; dstName: string; replace: boolean; owner: number }): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [workerFile(), JSON.stringify(job)], { stdio: ['ignore', 'pipe', 'ignore', srcDir, dstDir] });
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.on('error', (e) => resolve(errnoOf(e)));
    child.on('close', () => {
      try {
        resolve((JSON.parse(out) as { errno: number }).errno);
      } catch {
        resolve(EIO);
      }
    });
  });
}

/**
 * Copy between the host and a container. Owners are kept for a machine without a user namespace; into a
 * user-namespaced one everything becomes the machine's root, out of one everything becomes the host's.
 */
export async function copyFiles(m: Machine, req: CopyRequest): Promise<FsResult> {
  if (!hasFiles(m)) return { ok: false, failure: { error: 'io.systemd.Machine.NotSupported' } };
  if (copiesRunning >= COPIES_MAX) return { ok: false, failure: { error: 'io.systemd.Machine.TooManyOperations' } };
  copiesRunning++;
  try {
    return await copyCounted(m, req);
  } finally {
    copiesRunning--;
  }
}

async function copyCounted(m: Machine, req: CopyRequest): Promise<FsResult> {
  const hostPath = req.direction === 'to' ? req.source : req.destination;
  const machinePath = req.direction === 'to' ? req.destination : req.source;
  const hostName = fileName(hostPath);
  const machineName = fileName(machinePath);
  if (hostName === undefined || machineName === undefined) return setupFailure(EADDRNOTAVAIL);
  let hostDir: number;
  try {
    hostDir = openHostParent(hostPath);
  } catch (e) {
    return setupFailure(errnoOf(e));
  }
  let machineDir = -1;
  try {
    const shift = machineUidShift(m);
    if (!shift.ok) return setupFailure(ENXIO);
    try {
      machineDir = openMachineParent(m, machinePath);
    } catch (e) {
      return copyFailure(errnoOf(e));
    }
    const to = req.direction === 'to';
    const owner = shift.value === 0 ? -1 : to ? shift.value : 0;
    const errno = await runWorker(to ? hostDir : machineDir, to ? machineDir : hostDir, {
      srcName: to ? hostName : machineName,
      dstName: to ? machineName : hostName,
      replace: req.replace,
      owner,
    });
    return errno === 0 ? done : copyFailure(errno);
  } finally {
    fs.closeSync(hostDir);
    if (machineDir >= 0) fs.closeSync(machineDir);
  }
}

// The bind mount helper: clone the host tree (open_tree), make it read-only if asked (mount_setattr),
// join the leader's mount namespace (setns, which needs a single-threaded process, so not Node), make the
// mount point if asked, attach the tree there (move_mount). Prints the errno (0 when mounted).
const BIND_HELPER = String.raw`
use strict; use POSIX ();
my ($pid, $src, $dst, $ro, $mk) = @ARGV;
my $none = ""; my $from = "$src"; my $to = "$dst";
sub fail { print 0 + $!; exit 0 }
my $tree = syscall(428, -100, $from, 0x80001 | 0x8000);
fail() if $tree < 0;
if ($ro) { my $attr = pack("QQQQ", 1, 0, 0, 0); syscall(442, $tree, $none, 0x1000 | 0x8000, $attr, 32) == 0 or fail(); }
my $isdir = -d $src;
open(my $ns, "<", "/proc/$pid/ns/mnt") or fail();
syscall(308, fileno($ns), 0x20000) == 0 or fail();
chdir("/") or fail();
if ($mk && !-e $dst) {
  my $p = ""; my @parts = grep { length } split m{/}, $dst; my $last = pop @parts;
  for (@parts) { $p .= "/$_"; mkdir($p, 0755) or $!{EEXIST} or fail(); }
  if ($isdir) { mkdir("$p/$last", 0755) or $!{EEXIST} or fail(); }
  else { open(my $f, ">>", "$p/$last") or fail(); close($f); }
}
syscall(429, $tree, $none, -100, $to, 4) == 0 or fail();
print 0;
`;

function runBindHelper(pid: number, req: BindRequest): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn('perl', ['-e', BIND_HELPER, String(pid), req.source, req.destination, req.readOnly ? '1' : '', req.mkdir ? '1' : ''], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.on('error', (e) => resolve(errnoOf(e)));
    child.on('close', () => {
      const n = Number.parseInt(out.trim(), 10);
      resolve(Number.isInteger(n) ? n : EIO);
    });
  });
}

const mountNamespaceOf = (p: string): number | undefined => {
  try {
    return fs.statSync(`${p}/ns/mnt`).ino;
  } catch {
    return undefined;
  }
};

/**
 * Mount a host path into a container, as machined 262 does: not into a user-namespaced machine
 * (NotSupported), EINVAL for a machine in berthd's own mount namespace, ENOENT for a missing source or
 * (without `mkdir`) a missing mount point.
 */
export async function bindMount(m: Machine, req: BindRequest): Promise<FsResult> {
  if (!hasFiles(m)) return { ok: false, failure: { error: 'io.systemd.Machine.NotSupported' } };
  const shift = machineUidShift(m);
  if (!shift.ok) return setupFailure(ENXIO);
  if (shift.value !== 0) return { ok: false, failure: { error: 'io.systemd.Machine.NotSupported' } };
  const theirs = mountNamespaceOf(`/proc/${m.leader.pid}`);
  if (theirs === undefined) return setupFailure(ESRCH);
  if (theirs === mountNamespaceOf('/proc/self')) return setupFailure(EINVAL);
  const errno = await runBindHelper(m.leader.pid, req);
  return errno === 0 ? done : setupFailure(errno);
}
