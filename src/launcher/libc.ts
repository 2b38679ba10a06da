/**
 * The few libc calls Node does not offer (flock, AF_UNIX datagram sockets with credentials, ptys),
 * bound with koffi and loaded on first use so that code paths which never need them do not pay for it.
 */
import koffi from 'koffi';

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
export const O_CLOEXEC = 0o2000000;

export const EWOULDBLOCK = 11;
export const EINTR = 4;

interface Libc {
  flock: (fd: number, op: number) => number;
  socket: (domain: number, type: number, proto: number) => number;
  bind: (fd: number, addr: Buffer, len: number) => number;
  sendto: (fd: number, buf: Buffer, len: number, flags: number, addr: Buffer, alen: number) => number;
  setsockopt: (fd: number, level: number, name: number, val: Buffer, len: number) => number;
  shutdown: (fd: number, how: number) => number;
  close: (fd: number) => number;
  recvmsg: ((fd: number, msg: unknown, flags: number) => number) & {
    async: (fd: number, msg: unknown, flags: number, cb: (err: unknown, res: number) => void) => void;
  };
  posix_openpt: (flags: number) => number;
  grantpt: (fd: number) => number;
  unlockpt: (fd: number) => number;
  ptsname_r: (fd: number, buf: Buffer, len: number) => number;
  ioctl: (fd: number, request: number, ...args: unknown[]) => number;
  types: { msghdr: unknown; iovec: unknown };
}

let cached: Libc | undefined;

export function libc(): Libc {
  if (cached) return cached;
  const lib = koffi.load('libc.so.6');
  const iovec = koffi.struct('berth_iovec', { iov_base: 'void *', iov_len: 'size_t' });
  const msghdr = koffi.struct('berth_msghdr', {
    msg_name: 'void *',
    msg_namelen: 'uint32_t',
    msg_iov: 'void *',
    msg_iovlen: 'size_t',
    msg_control: 'void *',
    msg_controllen: 'size_t',
    msg_flags: 'int',
  });
  cached = {
    flock: lib.func('int flock(int fd, int op)'),
    socket: lib.func('int socket(int domain, int type, int protocol)'),
    bind: lib.func('int bind(int fd, const void *addr, uint32_t len)'),
    sendto: lib.func('intptr_t sendto(int fd, const void *buf, size_t len, int flags, const void *addr, uint32_t alen)'),
    setsockopt: lib.func('int setsockopt(int fd, int level, int name, const void *val, uint32_t len)'),
    shutdown: lib.func('int shutdown(int fd, int how)'),
    close: lib.func('int close(int fd)'),
    recvmsg: lib.func('intptr_t recvmsg(int fd, void *msg, int flags)') as Libc['recvmsg'],
    posix_openpt: lib.func('int posix_openpt(int flags)'),
    grantpt: lib.func('int grantpt(int fd)'),
    unlockpt: lib.func('int unlockpt(int fd)'),
    ptsname_r: lib.func('int ptsname_r(int fd, _Out_ uint8_t *buf, size_t len)'),
    ioctl: lib.func('int ioctl(int fd, unsigned long request, ...)'),
    types: { msghdr, iovec },
  };
  return cached;
}

export function errno(): number {
  return koffi.errno();
}

export { koffi };

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
  return libc().ioctl(fd, 0x5414 /* TIOCSWINSZ */, 'uint8_t *', ws) === 0;
}

/**
 * Opens the other side of a pseudo terminal from its master (TIOCGPTPEER), with no path lookup that a
 * machine could redirect with a symlink. Returns the descriptor, or -1 (see errno()).
 */
export function openPtyPeer(master: number): number {
  return libc().ioctl(master, 0x5441 /* TIOCGPTPEER */, 'int', O_RDWR | O_NOCTTY | O_CLOEXEC);
}
