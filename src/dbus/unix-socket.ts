/**
 * The few libc calls the D-Bus transport needs and Node lacks: an AF_UNIX socket with connect,
 * sendmsg/recvmsg with SCM_RIGHTS, poll (its `.async` form runs on the libuv thread pool), a pipe to
 * wake that poll, dup and close. The calls are bound once, on first use, by src/varlink's peer.ts (the
 * binding of the protocol modules, which depend on no berth code); this file shapes them for the
 * transport.
 */
import {
  AF_UNIX, EAGAIN, EINTR, errnoName, MSG_CMSG_CLOEXEC, MSG_DONTWAIT, MSG_NOSIGNAL, POLLERR, POLLHUP, POLLIN, POLLOUT,
  SCM_RIGHTS, SOCK_CLOEXEC, SOCK_NONBLOCK, SOCK_STREAM, socketLibc, SOL_SOCKET, SystemCallError,
} from '../varlink/peer.js';

export { EAGAIN, EINTR, POLLERR, POLLHUP, POLLIN, POLLOUT };

const O_NONBLOCK = 0o4000;
const O_CLOEXEC = 0o2000000;
const MSG_CTRUNC = 0x8;
const F_DUPFD_CLOEXEC = 1030;
/** The kernel's limit of descriptors in one SCM_RIGHTS message. */
export const MAX_FDS_PER_MESSAGE = 253;

const load = socketLibc;

export { errnoName, SystemCallError };

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
