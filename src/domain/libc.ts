/**
 * berth's one binding of the libc calls Node does not offer (flock, AF_UNIX datagram sockets with
 * credentials, ptys, pidfds, epoll, eventfd, openat2, clock_gettime), each bound once with koffi.
 *
 * koffi is required on first use, never at import: berthd answers the first call of a socket-activated
 * start without loading the native module when that call needs none of this. (src/varlink keeps a
 * binding of its own, so that it imports nothing of berth.) errno numbers come from Node's own table.
 */
import { createRequire } from 'node:module';
import { constants as osConstants } from 'node:os';

import type { KoffiFunc } from 'koffi';

type Koffi = typeof import('koffi');

export const { EWOULDBLOCK, EINTR, EIO, ENODEV, ENOENT, ESRCH } = osConstants.errno;

export const AF_UNIX = 1;
export const SOCK_DGRAM = 2;
export const SOCK_CLOEXEC = 0o2000000;
export const SOL_SOCKET = 1;
export const SO_PASSCRED = 16;
export const SCM_CREDENTIALS = 2;
export const LOCK_EX = 2;
export const LOCK_NB = 4;
export const LOCK_UN = 8;
export const SHUT_RDWR = 2;
export const O_RDWR = 2;
export const O_NOCTTY = 0o400;
export const O_DIRECTORY = 0o200000;
export const O_CLOEXEC = 0o2000000;
export const O_PATH = 0o10000000;
export const EFD_CLOEXEC = O_CLOEXEC;
export const EFD_NONBLOCK = 0o4000;
export const EPOLL_CTL_ADD = 1;
export const EPOLL_CTL_DEL = 2;
export const EPOLLIN = 0x001;
export const POLLIN = 0x001;
export const POLLHUP = 0x010;
export const POLLNVAL = 0x020;
export const CLOCK_REALTIME = 0;
export const CLOCK_BOOTTIME = 7;
export const RESOLVE_NO_MAGICLINKS = 0x02;
export const RESOLVE_IN_ROOT = 0x10;

const SYS_pidfd_send_signal = 424;
const SYS_pidfd_open = 434;
const SYS_openat2 = 437;
const TIOCSWINSZ = 0x5414;
const TIOCGPTPEER = 0x5441;

export interface Libc {
  flock: (fd: number, op: number) => number;
  socket: (domain: number, type: number, proto: number) => number;
  bind: (fd: number, addr: Buffer, len: number) => number;
  sendto: (fd: number, buf: Buffer, len: number, flags: number, addr: Buffer, alen: number) => number;
  setsockopt: (fd: number, level: number, name: number, val: Buffer, len: number) => number;
  shutdown: (fd: number, how: number) => number;
  close: (fd: number) => number;
  recvmsg: KoffiFunc<(fd: number, msg: unknown, flags: number) => number>;
  poll: (fds: Buffer, n: number, timeout: number) => number;
  read: (fd: number, buf: Buffer, len: number) => number;
  write: (fd: number, buf: Buffer, len: number) => number;
  posix_openpt: (flags: number) => number;
  grantpt: (fd: number) => number;
  unlockpt: (fd: number) => number;
  ptsname_r: (fd: number, buf: Buffer, len: number) => number;
  ioctl: (fd: number, request: number, ...args: unknown[]) => number;
  epoll_create1: (flags: number) => number;
  epoll_ctl: (epfd: number, op: number, fd: number, event: Buffer) => number;
  epoll_wait: KoffiFunc<(epfd: number, events: Buffer, max: number, timeout: number) => number>;
  eventfd: (initval: number, flags: number) => number;
  clock_gettime: (clock: number, ts: Buffer) => number;
  /** syscall(2) with the argument shapes berth uses: pidfd_open, pidfd_send_signal and openat2. */
  syscall2: (nr: number, a: number, b: number) => number | bigint;
  syscall4: (nr: number, a: number, b: number, c: number, d: number) => number | bigint;
  syscallOpenat2: (nr: number, dirfd: number, path: string, how: Buffer, size: number) => number | bigint;
  setxattr: (path: string, name: string, value: Buffer, size: number, flags: number) => number;
  getxattr: (path: string, name: string, value: Buffer, size: number) => number;
  types: { msghdr: unknown; iovec: unknown };
}

let koffiModule: Koffi | undefined;
let bound: Libc | undefined;

/** The koffi module itself (for buffers that native calls fill), loaded on first use. */
export function koffi(): Koffi {
  return (koffiModule ??= createRequire(import.meta.url)('koffi') as Koffi);
}

/** The bound libc functions, bound on first use. */
export function libc(): Libc {
  if (bound) return bound;
  const k = koffi();
  const lib = k.load('libc.so.6');
  const iovec = k.struct('berth_iovec', { iov_base: 'void *', iov_len: 'size_t' });
  const msghdr = k.struct('berth_msghdr', {
    msg_name: 'void *',
    msg_namelen: 'uint32_t',
    msg_iov: 'void *',
    msg_iovlen: 'size_t',
    msg_control: 'void *',
    msg_controllen: 'size_t',
    msg_flags: 'int',
  });
  bound = {
    flock: lib.func('int flock(int fd, int op)'),
    socket: lib.func('int socket(int domain, int type, int protocol)'),
    bind: lib.func('int bind(int fd, const void *addr, uint32_t len)'),
    sendto: lib.func('intptr_t sendto(int fd, const void *buf, size_t len, int flags, const void *addr, uint32_t alen)'),
    setsockopt: lib.func('int setsockopt(int fd, int level, int name, const void *val, uint32_t len)'),
    shutdown: lib.func('int shutdown(int fd, int how)'),
    close: lib.func('int close(int fd)'),
    recvmsg: lib.func('intptr_t recvmsg(int fd, void *msg, int flags)'),
    poll: lib.func('int poll(void *fds, unsigned long n, int timeout)'),
    read: lib.func('long read(int fd, void *buf, unsigned long len)'),
    write: lib.func('long write(int fd, void *buf, unsigned long len)'),
    posix_openpt: lib.func('int posix_openpt(int flags)'),
    grantpt: lib.func('int grantpt(int fd)'),
    unlockpt: lib.func('int unlockpt(int fd)'),
    ptsname_r: lib.func('int ptsname_r(int fd, _Out_ uint8_t *buf, size_t len)'),
    ioctl: lib.func('int ioctl(int fd, unsigned long request, ...)'),
    epoll_create1: lib.func('int epoll_create1(int flags)'),
    epoll_ctl: lib.func('int epoll_ctl(int epfd, int op, int fd, void *event)'),
    epoll_wait: lib.func('int epoll_wait(int epfd, void *events, int max, int timeout)'),
    eventfd: lib.func('int eventfd(unsigned int initval, int flags)'),
    clock_gettime: lib.func('int clock_gettime(int clock, void *ts)'),
    syscall2: lib.func('long syscall(long, long, long)'),
    syscall4: lib.func('long syscall(long, long, long, long, long)'),
    syscallOpenat2: lib.func('long syscall(long, int, const char *, const void *, unsigned long)'),
    setxattr: lib.func('int setxattr(const char *path, const char *name, const void *value, size_t size, int flags)'),
    getxattr: lib.func('intptr_t getxattr(const char *path, const char *name, _Out_ void *value, size_t size)'),
    types: { msghdr, iovec },
  };
  return bound;
}

/** errno of the last libc call that failed. */
export function errno(): number {
  return koffi().errno();
}

/** A `struct sockaddr_un` for a filesystem path. */
export function sockaddrUn(path: string): Buffer {
  const p = Buffer.from(path);
  if (p.length >= 108) throw new Error(`socket path too long (${p.length} bytes, limit 107): ${path}`);
  const buf = Buffer.alloc(2 + p.length + 1);
  buf.writeUInt16LE(AF_UNIX, 0);
  p.copy(buf, 2);
  return buf;
}

/** Try to take an exclusive flock on an open fd without waiting: true when taken. */
export function tryLock(fd: number): boolean {
  const r = libc().flock(fd, LOCK_EX | LOCK_NB);
  if (r === 0) return true;
  const e = errno();
  if (e === EWOULDBLOCK) return false;
  throw new Error(`flock failed: errno ${e}`);
}

/** Sets a terminal's size (TIOCSWINSZ), so that programs on it lay out their output to fit. */
export function setWindowSize(fd: number, rows: number, columns: number): boolean {
  const ws = Buffer.alloc(8);
  ws.writeUInt16LE(rows, 0);
  ws.writeUInt16LE(columns, 2);
  return libc().ioctl(fd, TIOCSWINSZ, 'uint8_t *', ws) === 0;
}

/**
 * Opens the other side of a pseudo terminal from its master (TIOCGPTPEER), with no path lookup that a
 * machine could redirect with a symlink. Returns the descriptor, or -1 (see errno()).
 */
export function openPtyPeer(master: number): number {
  return libc().ioctl(master, TIOCGPTPEER, 'int', O_RDWR | O_NOCTTY | O_CLOEXEC);
}

/** Opens a pidfd for `pid`; returns the fd or a negative errno. */
export function pidfdOpen(pid: number): number {
  const fd = Number(libc().syscall2(SYS_pidfd_open, pid, 0));
  return fd < 0 ? -errno() : fd;
}

/** Sends `signal` to the process a pidfd refers to; returns 0 or a negative errno. */
export function pidfdSendSignal(pidfd: number, signal: number): number {
  const r = Number(libc().syscall4(SYS_pidfd_send_signal, pidfd, signal, 0, 0));
  return r < 0 ? -errno() : 0;
}

/**
 * openat2(2) of `path` below the directory `dirfd`, with open(2) `flags` (O_CLOEXEC added) and
 * RESOLVE_* `resolve` flags. Returns the descriptor or a negative errno.
 */
export function openat2(dirfd: number, path: string, flags: number, resolve: number): number {
  const how = Buffer.alloc(24);
  how.writeBigUInt64LE(BigInt(flags | O_CLOEXEC), 0);
  how.writeBigUInt64LE(0n, 8);
  how.writeBigUInt64LE(BigInt(resolve), 16);
  const fd = Number(libc().syscallOpenat2(SYS_openat2, dirfd, path, how, how.length));
  return fd < 0 ? -errno() : fd;
}

/** A clock's current time (clock_gettime), in µs. */
export function clockUs(clock: number): number {
  const ts = Buffer.alloc(16);
  libc().clock_gettime(clock, ts);
  return Number(ts.readBigInt64LE(0)) * 1e6 + Math.floor(Number(ts.readBigInt64LE(8)) / 1000);
}

/** Set an extended attribute of a file; false (errno set) when the file system refuses. */
export function setXattr(path: string, name: string, value: string): boolean {
  const b = Buffer.from(value, 'utf8');
  return libc().setxattr(path, name, b, b.length, 0) === 0;
}

/** An extended attribute of a file (up to 4 KiB of it), or undefined when it has none. */
export function getXattr(path: string, name: string): string | undefined {
  const b = Buffer.alloc(4096);
  const n = Number(libc().getxattr(path, name, b, b.length));
  return n >= 0 ? b.subarray(0, n).toString('utf8') : undefined;
}
