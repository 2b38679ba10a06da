// Leader processes: pinning them with a pidfd, telling a reused PID from the original process, signalling
// them, and noticing their exit.
//
// A pidfd refers to one process for its whole life, so once a leader is pinned a recycled PID cannot be
// mistaken for it. Exit is noticed by one epoll instance holding every pidfd, waited on by a koffi async call
// (a libuv pool thread). Adding or removing leaders is epoll_ctl from the main thread, which the kernel allows
// while another thread waits, so the cost per change is O(1) for any number of leaders. While no leader is
// watched the waiting call is not running, so the watcher never keeps the process alive by itself.

import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import { createRequire } from 'node:module';

/**
 * libc through koffi, loaded on first use: berthd answers its first call (socket activation) without
 * paying for the native module when no machine is registered yet.
 */
function bind() {
  const koffi = createRequire(import.meta.url)('koffi') as typeof import('koffi');
  const libc = koffi.load('libc.so.6');
  return {
    koffi,
    syscall3: libc.func('long syscall(long, long, long)'),
    syscall4: libc.func('long syscall(long, long, long, long, long)'),
    closeFd: libc.func('int close(int)'),
    epollCreate1: libc.func('int epoll_create1(int)'),
    epollCtl: libc.func('int epoll_ctl(int, int, int, void *)'),
    epollWait: libc.func('int epoll_wait(int, void *, int, int)'),
    eventfd: libc.func('int eventfd(unsigned int, int)'),
    writeFd: libc.func('long write(int, void *, unsigned long)'),
    readFd: libc.func('long read(int, void *, unsigned long)'),
    pollFds: libc.func('int poll(void *, unsigned long, int)'),
    clockGettime: libc.func('int clock_gettime(int, void *)'),
    openat2: libc.func('long syscall(long, int, const char *, const void *, unsigned long)'),
  };
}
let bound: ReturnType<typeof bind> | undefined;
const lib = () => (bound ??= bind());

const CLOCK_REALTIME = 0;
const CLOCK_BOOTTIME = 7;

const SYS_pidfd_send_signal = 424;
const SYS_pidfd_open = 434;
const O_CLOEXEC = 0o2000000;
const EFD_CLOEXEC = O_CLOEXEC;
const EFD_NONBLOCK = 0o4000;
const EPOLL_CTL_ADD = 1;
const EPOLL_CTL_DEL = 2;
const EPOLLIN = 0x001;
const POLLIN = 0x001;
const POLLHUP = 0x010;
const POLLNVAL = 0x020;
/** struct epoll_event is packed on x86-64: u32 events, u64 data. */
const EVENT_SIZE = 12;
const BATCH = 256;

const errno = (): number => lib().koffi.errno() as number;

/** A pinned leader: the pidfd keeps referring to this very process even after its PID is reused. */
export interface Leader {
  pid: number;
  /** -1 once closed. */
  pidfd: number;
  /** st_ino of the pidfd when pidfd inode numbers identify processes on this kernel (pidfs, Linux ≥ 6.9). */
  pidfdId?: number;
  /** Field 22 of /proc/PID/stat: start time in clock ticks after boot. */
  starttime: number;
}

/** Start time of a process (clock ticks after boot), or undefined when it does not exist. */
export function readStartTime(pid: number): number | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return undefined;
  }
  // The command name (field 2) may contain spaces and parentheses: fields resume after the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state); field 22 is rest[19].
  const v = Number(rest[19]);
  return Number.isFinite(v) ? v : undefined;
}

/** Real UID owning a process, or undefined when it does not exist. */
export function processUid(pid: number): number | undefined {
  return processUids(pid)?.real;
}

/** The real and saved user IDs of a process (the Uid: line of /proc/PID/status), or undefined if it is gone. */
function processUids(pid: number): { real: number; saved: number } | undefined {
  try {
    const m = /^Uid:\s+(\d+)\s+\d+\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'latin1'));
    return m ? { real: Number(m[1]), saved: Number(m[2]) } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether a process running as `uid` could signal `pid` itself: kill(2)'s rule, the sender's uid
 * equal to the target's real or saved user ID. False when the process is gone.
 */
export function uidMaySignal(uid: number, pid: number): boolean {
  const ids = processUids(pid);
  return ids !== undefined && (ids.real === uid || ids.saved === uid);
}

/** Open a pidfd; returns the fd or a negative errno. */
export function pidfdOpen(pid: number): number {
  const fd = Number(lib().syscall3(SYS_pidfd_open, pid, 0));
  return fd < 0 ? -errno() : fd;
}

let pidfdIdsUniqueCache: boolean | undefined;

/** Whether pidfd inode numbers tell processes apart here (they do with pidfs; older kernels share one inode). */
export function pidfdIdsUnique(): boolean {
  if (pidfdIdsUniqueCache !== undefined) return pidfdIdsUniqueCache;
  const a = pidfdOpen(process.pid);
  const b = pidfdOpen(1);
  try {
    pidfdIdsUniqueCache = a >= 0 && b >= 0 && fs.fstatSync(a).ino !== fs.fstatSync(b).ino;
  } catch {
    pidfdIdsUniqueCache = false;
  } finally {
    if (a >= 0) lib().closeFd(a);
    if (b >= 0) lib().closeFd(b);
  }
  return pidfdIdsUniqueCache;
}

function inodeOf(fd: number): number | undefined {
  if (!pidfdIdsUnique()) return undefined;
  try {
    return fs.fstatSync(fd).ino;
  } catch {
    return undefined;
  }
}

/** The pidfd inode number of a live process, if such numbers are meaningful here. */
export function pidfdIdOf(pid: number): number | undefined {
  const fd = pidfdOpen(pid);
  if (fd < 0) return undefined;
  try {
    return inodeOf(fd);
  } finally {
    lib().closeFd(fd);
  }
}

/** Does the process exist (zombies included)? */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

let bootIdCache: string | undefined;
/** This boot's ID, 32 lowercase hex digits. */
export function bootId(): string {
  bootIdCache ??= fs.readFileSync('/proc/sys/kernel/random/boot_id', 'latin1').trim().replace(/-/g, '');
  return bootIdCache;
}

/** What a previously recorded leader must still match to count as the same process. */
export interface LeaderIdentity {
  pidfdId?: number;
  starttime?: number;
  /** The leader existed at this CLOCK_REALTIME instant (µs): a process started later is a different one. */
  aliveAtRealtime?: number;
}

function clockUs(clock: number): number {
  const ts = Buffer.alloc(16);
  lib().clockGettime(clock, ts);
  return Number(ts.readBigInt64LE(0)) * 1e6 + Math.floor(Number(ts.readBigInt64LE(8)) / 1000);
}

/** CLOCK_REALTIME of the moment the system booted, in µs (as machined dates `.host`). */
export function bootRealtimeUs(): number {
  const boottime = clockUs(CLOCK_BOOTTIME);
  return clockUs(CLOCK_REALTIME) - boottime;
}

/** Realtime (µs) at which a process with this start time (clock ticks after boot) started. */
export function startRealtime(starttime: number): number {
  const hz = 100; // USER_HZ, fixed on Linux for /proc
  return bootRealtimeUs() + (starttime / hz) * 1e6;
}

/**
 * Pin a process as a leader. With `expect`, refuse a process that is not the recorded one (PID reused):
 * pidfd inode mismatch, start time mismatch, or started after the moment it was known alive.
 * Returns the leader or a negative errno (-ESRCH when gone or not the same process).
 */
export function pinLeader(pid: number, expect?: LeaderIdentity): Leader | number {
  const fd = pidfdOpen(pid);
  if (fd < 0) return fd;
  // Read the start time after opening the pidfd: if the process is still alive now, the pidfd refers to it.
  const starttime = readStartTime(pid);
  const pidfdId = inodeOf(fd);
  const fresh = starttime !== undefined && (() => {
    if (expect?.pidfdId !== undefined && pidfdId !== undefined) return expect.pidfdId === pidfdId;
    if (expect?.starttime !== undefined) return expect.starttime === starttime;
    // 20 ms of slack: /proc/uptime and the start time have a 10 ms resolution.
    if (expect?.aliveAtRealtime !== undefined) return startRealtime(starttime) <= expect.aliveAtRealtime + 20_000;
    return true;
  })();
  if (!fresh) {
    lib().closeFd(fd);
    return -3; // ESRCH
  }
  return { pid, pidfd: fd, ...(pidfdId !== undefined ? { pidfdId } : {}), starttime: starttime! };
}

/** Is the pinned leader still running? A pidfd turns readable when its process exits (zombies count as exited). */
/** One pollfd reused by every liveness check (they are synchronous), so a lookup allocates nothing. */
const alivePollFd = Buffer.alloc(8);

export function leaderAlive(leader: Leader): boolean {
  if (leader.pidfd < 0) return false;
  const pfd = alivePollFd;
  pfd.writeInt32LE(leader.pidfd, 0);
  pfd.writeInt16LE(POLLIN, 4);
  pfd.writeInt16LE(0, 6);
  const r = lib().pollFds(pfd, 1, 0);
  if (r < 0) return false;
  return (pfd.readInt16LE(6) & (POLLIN | POLLHUP | POLLNVAL)) === 0;
}

/** Send a signal to the pinned leader; returns 0 or a negative errno. */
export function signalLeader(leader: Leader, signal: number): number {
  if (leader.pidfd < 0) return -3;
  const r = Number(lib().syscall4(SYS_pidfd_send_signal, leader.pidfd, signal, 0, 0));
  return r < 0 ? -errno() : 0;
}

export function closeLeader(leader: Leader): void {
  if (leader.pidfd >= 0) lib().closeFd(leader.pidfd);
  leader.pidfd = -1;
}

/**
 * Watches pinned leaders and emits `exit` (with the key given to `watch`) once per leader when it exits.
 * The watcher does not close the pidfds it is given; `unwatch` before closing one.
 */
export class LeaderWatcher extends EventEmitter<{ exit: [key: string] }> {
  #epfd = -1;
  #wakefd = -1;
  #byToken = new Map<bigint, { key: string; fd: number }>();
  #byKey = new Map<string, bigint>();
  #nextToken = 1n;
  #waiting = false;
  #closed = false;
  #buf = Buffer.alloc(EVENT_SIZE * BATCH);

  /** The epoll instance and its wake-up eventfd are made with the first watched leader. */
  #open(): void {
    if (this.#epfd >= 0) return;
    this.#epfd = lib().epollCreate1(O_CLOEXEC);
    if (this.#epfd < 0) throw new Error(`epoll_create1 failed: errno ${errno()}`);
    this.#wakefd = lib().eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (this.#wakefd < 0) throw new Error(`eventfd failed: errno ${errno()}`);
    this.#ctl(EPOLL_CTL_ADD, this.#wakefd, 0n);
  }

  get size(): number {
    return this.#byKey.size;
  }

  /** Start watching; a leader that already exited is reported promptly too. */
  watch(key: string, leader: Leader): void {
    if (this.#closed) throw new Error('LeaderWatcher is closed');
    this.#open();
    this.unwatch(key);
    const token = this.#nextToken++;
    if (this.#ctl(EPOLL_CTL_ADD, leader.pidfd, token) < 0) throw new Error(`epoll_ctl failed: errno ${errno()}`);
    this.#byToken.set(token, { key, fd: leader.pidfd });
    this.#byKey.set(key, token);
    this.#arm();
  }

  unwatch(key: string): void {
    const token = this.#byKey.get(key);
    if (token === undefined) return;
    const entry = this.#byToken.get(token)!;
    this.#ctl(EPOLL_CTL_DEL, entry.fd, 0n);
    this.#byToken.delete(token);
    this.#byKey.delete(key);
    if (this.#byKey.size === 0) this.#wake();
  }

  /** Stop watching everything and release the epoll instance (once the waiting call has returned). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const key of [...this.#byKey.keys()]) this.unwatch(key);
    if (this.#waiting) this.#wake();
    else this.#release();
  }

  #ctl(op: number, fd: number, token: bigint): number {
    const ev = Buffer.alloc(EVENT_SIZE);
    ev.writeUInt32LE(EPOLLIN, 0);
    ev.writeBigUInt64LE(token, 4);
    return lib().epollCtl(this.#epfd, op, fd, ev);
  }

  #wake(): void {
    if (!this.#waiting) return;
    const one = Buffer.alloc(8);
    one.writeBigUInt64LE(1n);
    lib().writeFd(this.#wakefd, one, 8);
  }

  #arm(): void {
    if (this.#waiting || this.#closed || this.#byKey.size === 0) return;
    this.#waiting = true;
    lib().epollWait.async(this.#epfd, this.#buf, BATCH, -1, (err: unknown, n: number) => {
      this.#waiting = false;
      if (this.#closed) return this.#release();
      const exited: string[] = [];
      if (!err && n > 0) {
        for (let i = 0; i < n; i++) {
          const token = this.#buf.readBigUInt64LE(i * EVENT_SIZE + 4);
          if (token === 0n) {
            lib().readFd(this.#wakefd, Buffer.alloc(8), 8);
            continue;
          }
          const entry = this.#byToken.get(token);
          if (!entry) continue;
          this.#ctl(EPOLL_CTL_DEL, entry.fd, 0n);
          this.#byToken.delete(token);
          this.#byKey.delete(entry.key);
          exited.push(entry.key);
        }
      }
      this.#arm();
      for (const key of exited) this.emit('exit', key);
    });
  }

  #release(): void {
    if (this.#epfd >= 0) lib().closeFd(this.#epfd);
    if (this.#wakefd >= 0) lib().closeFd(this.#wakefd);
    this.#epfd = this.#wakefd = -1;
  }
}

const SYS_openat2 = 437;
const EIO = 5;
const O_PATH = 0o10000000;
const O_DIRECTORY = 0o200000;
const RESOLVE_NO_MAGICLINKS = 0x02;
const RESOLVE_IN_ROOT = 0x10;

/**
 * Opens `path` inside the directory tree `root` as a process chrooted there would (openat2 with
 * RESOLVE_IN_ROOT): absolute symlinks and `..` stay inside `root`. A machine's files, reached from
 * the host through /proc/LEADER/root, must be opened this way, or a symlink placed in the machine
 * would lead berthd (root) to a file of the host. `flags` are open(2) flags; returns a descriptor,
 * or throws an Error carrying `errno`.
 */
export function openInRoot(root: string, path: string, flags: number): number {
  const l = lib();
  let dir: number;
  try {
    dir = fs.openSync(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  } catch (e) {
    throw Object.assign(new Error(`cannot open ${root}`), { errno: Math.abs((e as NodeJS.ErrnoException).errno ?? 2) });
  }
  try {
    const how = Buffer.alloc(24);
    how.writeBigUInt64LE(BigInt(flags | O_CLOEXEC), 0);
    how.writeBigUInt64LE(0n, 8);
    how.writeBigUInt64LE(BigInt(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS), 16);
    const fd = Number(l.openat2(SYS_openat2, dir, path.replace(/^\/+/, '') || '.', how, how.length));
    if (fd < 0) throw Object.assign(new Error(`cannot open ${path} in ${root}`), { errno: errno() });
    return fd;
  } finally {
    fs.closeSync(dir);
  }
}

/** The file at `path` inside `root` (see openInRoot); undefined when there is none there. */
export function statInRoot(root: string, path: string): fs.Stats | undefined {
  let fd: number;
  try {
    fd = openInRoot(root, path, O_PATH);
  } catch {
    return undefined;
  }
  try {
    return fs.fstatSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Reads the regular file at `path` inside `root` (see openInRoot). Throws an Error carrying `errno`:
 * ENOENT when there is no such file, EIO when it is not a regular file.
 */
export function readFileInRoot(root: string, path: string): string {
  const fd = openInRoot(root, path, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY);
  try {
    if (!fs.fstatSync(fd).isFile()) throw Object.assign(new Error(`${path} in ${root} is not a regular file`), { errno: EIO });
    return fs.readFileSync(fd, 'utf8');
  } finally {
    fs.closeSync(fd);
  }
}
