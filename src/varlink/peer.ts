/**
 * What Node's `net` module cannot do on AF_UNIX sockets, done through libc with koffi:
 * reading the peer's credentials (SO_PEERCRED), telling a listening socket from a connected one
 * (SO_ACCEPTCONN, when the kernel's socket list does not tell), binding or connecting abstract socket names with their exact length
 * (Node 20's libuv pads them to the full 108 bytes, which no other implementation matches), and
 * sending file descriptors along with a message (SCM_RIGHTS).
 */
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import { constants as osConstants } from 'node:os';
import { chmodSync, readFileSync, readlinkSync } from 'node:fs';

export interface PeerCredentials {
  uid: number;
  gid: number;
  pid: number;
}

/** Linux's numbers for the socket calls of the protocol modules (src/dbus uses them too). */
export const AF_UNIX = 1;
export const SOCK_STREAM = 1;
export const SOCK_CLOEXEC = 0o2000000;
export const SOCK_NONBLOCK = 0o4000;
export const SOL_SOCKET = 1;
const SO_PEERCRED = 17;
const SO_ACCEPTCONN = 30;
export const SCM_RIGHTS = 1;
export const MSG_DONTWAIT = 0x40;
export const MSG_NOSIGNAL = 0x4000;
export const MSG_CMSG_CLOEXEC = 0x40000000;
export const POLLIN = 0x1;
export const POLLOUT = 0x4;
export const POLLERR = 0x8;
export const POLLHUP = 0x10;
export const { EAGAIN, EINTR } = osConstants.errno;

interface Libc {
  getsockopt: (fd: number, level: number, name: number, value: Buffer, len: Buffer) => number;
  socket: (domain: number, type: number, protocol: number) => number;
  bind: (fd: number, addr: Buffer, len: number) => number;
  connect: (fd: number, addr: Buffer, len: number) => number;
  listen: (fd: number, backlog: number) => number;
  close: (fd: number) => number;
  poll: ((fds: Buffer, n: number, timeout: number) => number) & {
    async: (fds: Buffer, n: number, timeout: number, cb: (err: unknown, res: number) => void) => void;
  };
  sendmsg: (fd: number, msg: object, flags: number) => number | bigint;
  recvmsg: (fd: number, msg: object, flags: number) => number | bigint;
  pipe2: (fds: Int32Array, flags: number) => number;
  read: (fd: number, buf: Buffer, n: number) => number | bigint;
  write: (fd: number, buf: Buffer, n: number) => number | bigint;
  fcntl: (fd: number, cmd: number, arg: number) => number;
  strerror: (errno: number) => string;
  errno: () => number;
  /** glibc's malloc_trim: gives freed heap memory back to the system; 1 when some was. */
  mallocTrim: (pad: number) => number;
}

/** The unix socket calls of the protocol modules (this one and src/dbus), bound on first use. */
export type SocketLibc = Libc;

let libc: Libc | undefined;

export function socketLibc(): SocketLibc {
  return load();
}

function load(): Libc {
  if (libc) return libc;
  // Loaded on first use (not at import): a socket-activated server answers sooner.
  const koffi = createRequire(import.meta.url)('koffi') as typeof import('koffi');
  const lib = koffi.load('libc.so.6');
  koffi.struct('berth_peer_iovec', { base: 'void *', len: 'size_t' });
  koffi.struct('berth_peer_msghdr', {
    name: 'void *',
    namelen: 'uint32_t',
    iov: 'berth_peer_iovec *',
    iovlen: 'size_t',
    control: 'void *',
    controllen: 'size_t',
    flags: 'int',
  });
  libc = {
    getsockopt: lib.func('int getsockopt(int, int, int, _Out_ uint8_t *, _Inout_ uint8_t *)'),
    socket: lib.func('int socket(int, int, int)'),
    bind: lib.func('int bind(int, const uint8_t *, uint32_t)'),
    connect: lib.func('int connect(int, const uint8_t *, uint32_t)'),
    listen: lib.func('int listen(int, int)'),
    close: lib.func('int close(int)'),
    poll: lib.func('int poll(_Inout_ uint8_t *, unsigned long, int)'),
    sendmsg: lib.func('intptr_t sendmsg(int, const berth_peer_msghdr *, int)'),
    recvmsg: lib.func('intptr_t recvmsg(int, _Inout_ berth_peer_msghdr *, int)'),
    pipe2: lib.func('int pipe2(_Out_ int *, int)'),
    read: lib.func('intptr_t read(int, _Out_ uint8_t *, size_t)'),
    write: lib.func('intptr_t write(int, const uint8_t *, size_t)'),
    fcntl: lib.func('int fcntl(int, int, int)'),
    strerror: lib.func('const char *strerror(int)'),
    mallocTrim: lib.func('int malloc_trim(size_t)'),
    errno: () => koffi.errno(),
  };
  return libc;
}

// Where two names share a number, the C library's errno name table has EOPNOTSUPP (not ENOTSUP).
const errnoNames = new Map<number, string>([[osConstants.errno.EOPNOTSUPP, 'EOPNOTSUPP']]);
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

/** The file descriptor behind a connected net.Socket, or -1 when it has none. */
export function socketFd(socket: Socket): number {
  const handle = (socket as unknown as { _handle?: { fd?: number } })._handle;
  return typeof handle?.fd === 'number' ? handle.fd : -1;
}

const unknownPeer: PeerCredentials = Object.freeze({ uid: -1, gid: -1, pid: 0 });

/** Reads a socket option of `size` bytes; undefined when getsockopt fails. */
function socketOption(fd: number, name: number, size: number): Buffer | undefined {
  const value = Buffer.alloc(size);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(size);
  return load().getsockopt(fd, SOL_SOCKET, name, value, len) === 0 ? value : undefined;
}

/** Reads SO_PEERCRED; returns uid/gid -1 when the descriptor is not a Unix socket. */
export function peerCredentials(fd: number): PeerCredentials {
  if (fd < 0) return unknownPeer;
  const value = socketOption(fd, SO_PEERCRED, 12);
  if (!value) return unknownPeer;
  return { pid: value.readInt32LE(0), uid: value.readUInt32LE(4), gid: value.readUInt32LE(8) };
}

/** __SO_ACCEPTCON in the Flags column of /proc/net/unix (proc(5)): the socket listens. */
const PROC_NET_UNIX_ACCEPTCON = 0x10000;

/**
 * The listening state of a unix socket as the kernel lists it in /proc/net/unix (found by the inode
 * that /proc/self/fd names), or undefined when it is not listed there (no /proc, another network
 * namespace, not a unix socket). Costs a read of a memory file, where SO_ACCEPTCONN would cost loading
 * libc: socket activation hands over its sockets before the first call, and that call waits.
 */
function listedListening(fd: number): boolean | undefined {
  try {
    const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`));
    if (!m) return undefined;
    for (const line of readFileSync('/proc/net/unix', 'latin1').split('\n')) {
      // Num RefCount Protocol Flags Type St Inode [Path]
      const f = line.trim().split(/\s+/);
      if (f[6] === m[1]) return (parseInt(f[3]!, 16) & PROC_NET_UNIX_ACCEPTCON) !== 0;
    }
  } catch {
    /* fall back to the socket option */
  }
  return undefined;
}

/** True when fd is a socket in the listening state (as listed by the kernel, else SO_ACCEPTCONN). */
export function isListeningSocket(fd: number): boolean {
  const listed = listedListening(fd);
  if (listed !== undefined) return listed;
  const value = socketOption(fd, SO_ACCEPTCONN, 4);
  return value !== undefined && value.readInt32LE(0) !== 0;
}

/**
 * sockaddr_un without padding: the family, then a path and its terminating NUL, or for an
 * abstract name a leading NUL and the name.
 */
function unixAddress(name: string, abstract: boolean): Buffer {
  const bytes = Buffer.from(name, 'utf8');
  if (abstract && bytes.length + 1 > 107) throw new Error(`abstract socket name too long: @${name}`);
  if (!abstract && bytes.length > 107) throw new Error(`socket path too long: ${name}`);
  const addr = Buffer.alloc(3 + bytes.length);
  addr.writeUInt16LE(AF_UNIX, 0);
  bytes.copy(addr, abstract ? 3 : 2);
  return addr;
}

function newSocket(c: Libc, nonBlocking = false): number {
  const fd = c.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (nonBlocking ? SOCK_NONBLOCK : 0), 0);
  if (fd < 0) throw new SystemCallError('socket', c.errno());
  return fd;
}

/** Closes a socket whose set-up failed and throws the failure (errno as the failed call left it). */
function closeAndThrow(c: Libc, fd: number, syscall: string): never {
  const e = c.errno();
  c.close(fd);
  throw new SystemCallError(syscall, e);
}

/** A new socket bound to `addr` and listening; `beforeListen` may finish setting it up. */
function listenOn(addr: Buffer, backlog: number, beforeListen?: (fail: (syscall: string) => never) => void): number {
  const c = load();
  const fd = newSocket(c);
  const fail = (syscall: string): never => closeAndThrow(c, fd, syscall);
  if (c.bind(fd, addr, addr.length) !== 0) fail('bind');
  beforeListen?.(fail);
  if (c.listen(fd, backlog) !== 0) fail('listen');
  return fd;
}

/** Creates a listening socket bound to the abstract name `@name`; returns its descriptor. */
export function listenAbstract(name: string, backlog = 4096): number {
  return listenOn(unixAddress(name, true), backlog);
}

/**
 * Connects a new socket to the abstract name `@name`; returns its descriptor. The socket is
 * non-blocking, so a listener with a full backlog fails with EAGAIN instead of stalling the
 * process (Unix stream sockets connect at once or not at all).
 */
export function connectAbstract(name: string): number {
  return connectNonBlocking(unixAddress(name, true));
}

/** Connects a new non-blocking socket to a path in the file system; returns its descriptor. */
export function connectPath(path: string): number {
  return connectNonBlocking(unixAddress(path, false));
}

/** A new non-blocking socket connected to the address; its descriptor. */
function connectNonBlocking(addr: Buffer): number {
  const c = load();
  const fd = newSocket(c, true);
  if (c.connect(fd, addr, addr.length) !== 0) closeAndThrow(c, fd, 'connect');
  return fd;
}

/**
 * Creates a listening socket bound to a path, outside of libuv, so that a supervisor can hold it
 * and hand it to a child without ever accepting on it.
 */
export function listenPath(path: string, mode = 0o666, backlog = 4096): number {
  return listenOn(unixAddress(path, false), backlog, (fail) => {
    // The mode of the socket file is what connecting clients are checked against (fchmod on the
    // descriptor would not change it).
    try {
      chmodSync(path, mode);
    } catch {
      fail('chmod');
    }
  });
}

/** An array of struct pollfd, one per descriptor, each waiting for `events`. */
function pollFds(fds: readonly number[], events: number): Buffer {
  const buf = Buffer.alloc(8 * fds.length);
  fds.forEach((fd, i) => {
    buf.writeInt32LE(fd, i * 8);
    buf.writeInt16LE(events, i * 8 + 4);
  });
  return buf;
}

/** The events poll reported for the `i`th descriptor. */
const revents = (buf: Buffer, i: number): number => buf.readInt16LE(i * 8 + 6);

/** Resolves when one of the descriptors is readable (for a listening socket: a connection waits). */
export function waitReadable(fds: number[], timeoutMs = -1): Promise<number[]> {
  const buf = pollFds(fds, POLLIN);
  return new Promise((resolve, reject) => {
    load().poll.async(buf, fds.length, timeoutMs, (err, res) => {
      if (err) return reject(err);
      if (res < 0) return resolve([]);
      resolve(fds.filter((_, i) => revents(buf, i) !== 0));
    });
  });
}

/** Resolves when the socket can take more data (or has failed, which the next write reports). */
function waitWritable(fd: number): Promise<void> {
  return new Promise((resolve) => load().poll.async(pollFds([fd], POLLOUT), 1, 1000, () => resolve()));
}

export function closeFd(fd: number): void {
  load().close(fd);
}

/** Closes each descriptor; one already closed is no error. */
export function closeFds(fds: readonly number[]): void {
  if (fds.length === 0) return; // every error reply passes through here: no libc for nothing to close
  const c = load();
  for (const fd of fds) c.close(fd);
}

/**
 * After reading end-of-file: did the peer close the connection entirely (POLLHUP), or only shut
 * down its sending side (it still reads our replies)? Node does not tell the two apart.
 */
export function peerHungUp(fd: number): boolean {
  if (fd < 0) return false;
  const buf = pollFds([fd], POLLOUT);
  if (load().poll(buf, 1, 0) <= 0) return false;
  return (revents(buf, 0) & (POLLHUP | POLLERR)) !== 0;
}

/**
 * Runs a call on a non-blocking socket until it gets through: again after EINTR, after `wait`
 * while it would block. Throws SystemCallError on any other failure.
 */
async function untilDone(c: Libc, syscall: string, run: () => number, wait: () => Promise<unknown>): Promise<number> {
  for (;;) {
    const n = run();
    if (n >= 0) return n;
    const e = c.errno();
    if (e === EINTR) continue;
    if (e !== EAGAIN) throw new SystemCallError(syscall, e);
    await wait();
  }
}

/**
 * Sends `data` with the descriptors `fds` attached (SCM_RIGHTS) on a connected, non-blocking
 * socket. Returns how many bytes went out: the descriptors travel with the first byte, and the
 * caller writes whatever is left the ordinary way. Waits (without blocking the event loop) while
 * the socket's send buffer is full; throws SystemCallError on any other failure.
 */
export async function sendWithFds(fd: number, data: Buffer, fds: readonly number[]): Promise<number> {
  const c = load();
  const control = Buffer.alloc(rightsSpace(fds.length));
  control.writeBigUInt64LE(BigInt(16 + 4 * fds.length), 0);
  control.writeInt32LE(SOL_SOCKET, 8);
  control.writeInt32LE(SCM_RIGHTS, 12);
  fds.forEach((d, i) => control.writeInt32LE(d, 16 + 4 * i));
  const msg = messageHeader(data, control);
  return untilDone(c, 'sendmsg', () => Number(c.sendmsg(fd, msg, MSG_DONTWAIT | MSG_NOSIGNAL)), () => waitWritable(fd));
}

/** Room for one SCM_RIGHTS control message of `n` descriptors: a 16-byte header, data padded to 8. */
function rightsSpace(n: number): number {
  return 16 + Math.ceil((4 * n) / 8) * 8;
}

/** The struct msghdr koffi marshals: one buffer of data, one of control messages. */
function messageHeader(data: Buffer, control: Buffer) {
  return { name: null, namelen: 0, iov: [{ base: data, len: data.length }], iovlen: 1, control, controllen: control.length, flags: 0 };
}

/**
 * Reads what is available on a non-blocking socket, waiting until something is, together with any
 * descriptors that came along (SCM_RIGHTS). An empty `data` means the peer closed the connection.
 */
export async function receiveWithFds(fd: number, maxBytes = 65536, maxFds = 16): Promise<{ data: Buffer; fds: number[] }> {
  const c = load();
  const buf = Buffer.alloc(maxBytes);
  const control = Buffer.alloc(rightsSpace(maxFds));
  let msg = messageHeader(buf, control);
  const receive = () => {
    msg = messageHeader(buf, control);
    return Number(c.recvmsg(fd, msg, MSG_CMSG_CLOEXEC));
  };
  const n = await untilDone(c, 'recvmsg', receive, () => waitReadable([fd]));
  const fds: number[] = [];
  // One control message is all a Varlink peer sends: SOL_SOCKET/SCM_RIGHTS and its descriptors.
  const len = Number(msg.controllen) >= 16 ? Number(control.readBigUInt64LE(0)) : 0;
  if (len > 16 && control.readInt32LE(8) === SOL_SOCKET && control.readInt32LE(12) === SCM_RIGHTS) {
    for (let off = 16; off + 4 <= len; off += 4) fds.push(control.readInt32LE(off));
  }
  return { data: buf.subarray(0, n), fds };
}
