/**
 * The few libc calls the D-Bus transport needs and Node lacks, bound with koffi on first use (never
 * at import: cold start matters): an AF_UNIX socket with connect, sendmsg/recvmsg with SCM_RIGHTS,
 * poll (its `.async` form runs on the libuv thread pool), a pipe to wake that poll, dup and close.
 * This module keeps its own binding so that it stays self-contained.
 */
import { createRequire } from 'node:module';
import { constants as osConstants } from 'node:os';

export const POLLIN = 0x1;
export const POLLOUT = 0x4;
export const POLLERR = 0x8;
export const POLLHUP = 0x10;
export const EAGAIN = 11;
export const EINTR = 4;

const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const O_NONBLOCK = 0o4000;
const O_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;
const MSG_DONTWAIT = 0x40;
const MSG_NOSIGNAL = 0x4000;
const MSG_CTRUNC = 0x8;
const MSG_CMSG_CLOEXEC = 0x40000000;
const F_DUPFD_CLOEXEC = 1030;
/** The kernel's limit of descriptors in one SCM_RIGHTS message. */
export const MAX_FDS_PER_MESSAGE = 253;

type AsyncFn<A extends unknown[]> = ((...a: A) => number) & { async: (...a: [...A, (err: unknown, res: number) => void]) => void };

interface Libc {
  socket: (domain: number, type: number, protocol: number) => number;
  connect: (fd: number, addr: Buffer, len: number) => number;
  close: (fd: number) => number;
  poll: AsyncFn<[Buffer, number, number]>;
  pipe2: (fds: Int32Array, flags: number) => number;
  read: (fd: number, buf: Buffer, n: number) => number | bigint;
  write: (fd: number, buf: Buffer, n: number) => number | bigint;
  fcntl: (fd: number, cmd: number, arg: number) => number;
  sendmsg: (fd: number, msg: object, flags: number) => number | bigint;
  recvmsg: (fd: number, msg: object, flags: number) => number | bigint;
  strerror: (errno: number) => string;
  errno: () => number;
}

let libc: Libc | undefined;

function load(): Libc {
  if (libc) return libc;
  const koffi = createRequire(import.meta.url)('koffi') as typeof import('koffi');
  const lib = koffi.load('libc.so.6');
  koffi.struct('berth_dbus_iovec', { base: 'void *', len: 'size_t' });
  koffi.struct('berth_dbus_msghdr', {
    name: 'void *', namelen: 'uint32_t', iov: 'berth_dbus_iovec *', iovlen: 'size_t',
    control: 'void *', controllen: 'size_t', flags: 'int',
  });
  libc = {
    socket: lib.func('int socket(int, int, int)'),
    connect: lib.func('int connect(int, const uint8_t *, uint32_t)'),
    close: lib.func('int close(int)'),
    poll: lib.func('int poll(_Inout_ uint8_t *, unsigned long, int)'),
    pipe2: lib.func('int pipe2(_Out_ int *, int)'),
    read: lib.func('intptr_t read(int, _Out_ uint8_t *, size_t)'),
    write: lib.func('intptr_t write(int, const uint8_t *, size_t)'),
    fcntl: lib.func('int fcntl(int, int, int)'),
    sendmsg: lib.func('intptr_t sendmsg(int, const berth_dbus_msghdr *, int)'),
    recvmsg: lib.func('intptr_t recvmsg(int, _Inout_ berth_dbus_msghdr *, int)'),
    strerror: lib.func('const char *strerror(int)'),
    errno: () => koffi.errno(),
  };
  return libc;
}

// Where two names share a number, the C library's errno name table has EOPNOTSUPP (not ENOTSUP).
const errnoNames = new Map<number, string>([[95, 'EOPNOTSUPP']]);
for (const [name, n] of Object.entries(osConstants.errno)) if (!errnoNames.has(n)) errnoNames.set(n, name);

/** The symbolic name of an errno value ('ENOENT'), or undefined for an unknown number. */
export function errnoName(errno: number): string | undefined {
  return errnoNames.get(errno);
}

export class SystemCallError extends Error {
  readonly code: string;
  constructor(
    readonly syscall: string,
    readonly errno: number,
  ) {
    const code = errnoNames.get(errno) ?? `errno ${errno}`;
    super(`${syscall} failed: ${code}`);
    this.name = 'SystemCallError';
    this.code = code;
  }
}

/** A non-blocking socket connected to `addr` (a sockaddr_un); throws SystemCallError (EAGAIN: backlog full). */
export function connectUnix(addr: Buffer): number {
  const c = load();
  const fd = c.socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw new SystemCallError('socket', c.errno());
  if (c.connect(fd, addr, addr.length) !== 0) {
    const e = c.errno();
    c.close(fd);
    throw new SystemCallError('connect', e);
  }
  return fd;
}

/** The C library's text for an errno value ("No such file or directory"). */
export function strerror(errno: number): string {
  return load().strerror(errno);
}

export function closeFd(fd: number): void {
  if (fd >= 0) load().close(fd);
}

/** A new descriptor for the same open file (close-on-exec), for a caller who wants to keep one it sends. */
export function dupFd(fd: number): number {
  const c = load();
  const n = c.fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (n < 0) throw new SystemCallError('fcntl', c.errno());
  return n;
}

/** A non-blocking, close-on-exec pipe: [read end, write end]. */
export function makePipe(): [number, number] {
  const c = load();
  const fds = new Int32Array(2);
  if (c.pipe2(fds, O_NONBLOCK | O_CLOEXEC) !== 0) throw new SystemCallError('pipe2', c.errno());
  return [fds[0], fds[1]];
}

/** Writes one byte to a non-blocking pipe (a full pipe already carries a wake-up). */
export function pokeFd(fd: number): void {
  load().write(fd, Buffer.from([1]), 1);
}

/** Empties a non-blocking pipe. */
export function drainFd(fd: number): void {
  const c = load();
  const buf = Buffer.allocUnsafe(256);
  while (Number(c.read(fd, buf, buf.length)) > 0);
}

/** poll(2) on the libuv thread pool; resolves with each descriptor's revents, in order. */
export function pollAsync(fds: readonly number[], events: readonly number[], timeoutMs: number): Promise<number[]> {
  const c = load();
  const buf = Buffer.alloc(8 * fds.length);
  fds.forEach((fd, i) => {
    buf.writeInt32LE(fd, i * 8);
    buf.writeInt16LE(events[i], i * 8 + 4);
  });
  return new Promise((resolve, reject) => {
    c.poll.async(buf, fds.length, timeoutMs, (err, res) => {
      if (err) return reject(err);
      resolve(fds.map((_, i) => (res > 0 ? buf.readUInt16LE(i * 8 + 6) : 0)));
    });
  });
}

function rightsSpace(n: number): number {
  return 16 + Math.ceil((4 * n) / 8) * 8;
}

/**
 * One non-blocking sendmsg of `data` with `fds` attached (SCM_RIGHTS). Returns the bytes sent, or
 * -1 when the socket's buffer is full; throws SystemCallError on any other failure.
 */
export function sendSome(fd: number, data: Buffer, fds: readonly number[]): number {
  const c = load();
  let control: Buffer | null = null;
  if (fds.length > 0) {
    control = Buffer.alloc(rightsSpace(fds.length));
    control.writeBigUInt64LE(BigInt(16 + 4 * fds.length), 0);
    control.writeInt32LE(SOL_SOCKET, 8);
    control.writeInt32LE(SCM_RIGHTS, 12);
    fds.forEach((d, i) => control!.writeInt32LE(d, 16 + 4 * i));
  }
  const msg = { name: null, namelen: 0, iov: [{ base: data, len: data.length }], iovlen: 1, control, controllen: control?.length ?? 0, flags: 0 };
  for (;;) {
    const n = Number(c.sendmsg(fd, msg, MSG_DONTWAIT | MSG_NOSIGNAL));
    if (n >= 0) return n;
    const e = c.errno();
    if (e === EINTR) continue;
    if (e === EAGAIN) return -1;
    throw new SystemCallError('sendmsg', e);
  }
}

const readBuffer = { buf: null as Buffer | null, control: null as Buffer | null };

/**
 * One non-blocking recvmsg. Returns null when nothing is waiting, an empty `data` at end of file,
 * else a copy of the bytes and the descriptors that came with them (close-on-exec). Throws
 * SystemCallError on failure, or when descriptors were cut off (the kernel closed them).
 */
export function receiveSome(fd: number): { data: Buffer; fds: number[] } | null {
  const c = load();
  const buf = (readBuffer.buf ??= Buffer.allocUnsafe(256 * 1024));
  const control = (readBuffer.control ??= Buffer.alloc(rightsSpace(MAX_FDS_PER_MESSAGE)));
  for (;;) {
    const msg = { name: null, namelen: 0, iov: [{ base: buf, len: buf.length }], iovlen: 1, control, controllen: control.length, flags: 0 };
    const n = Number(c.recvmsg(fd, msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC));
    if (n < 0) {
      const e = c.errno();
      if (e === EINTR) continue;
      if (e === EAGAIN) return null;
      throw new SystemCallError('recvmsg', e);
    }
    const fds: number[] = [];
    const clen = Number(msg.controllen);
    for (let off = 0; off + 16 <= clen; ) {
      const len = Number(control.readBigUInt64LE(off));
      if (len < 16) break;
      if (control.readInt32LE(off + 8) === SOL_SOCKET && control.readInt32LE(off + 12) === SCM_RIGHTS) {
        for (let p = off + 16; p + 4 <= off + len; p += 4) fds.push(control.readInt32LE(p));
      }
      off += Math.ceil(len / 8) * 8;
    }
    if (msg.flags & MSG_CTRUNC) {
      for (const d of fds) c.close(d);
      throw new SystemCallError('recvmsg (descriptors truncated)', 0);
    }
    return { data: Buffer.from(buf.subarray(0, n)), fds };
  }
}
