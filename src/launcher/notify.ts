/**
 * The container's notify socket ($NOTIFY_SOCKET, sd_notify's receiving end): an AF_UNIX datagram socket with SO_PASSCRED, read on a worker thread (koffi
 * async recvmsg), so that each message arrives with the sender's PID as the kernel reports it. Like
 * nspawn, the supervisor may accept messages only from the container's PID 1.
 */
import fs from 'node:fs';
import { EventEmitter } from 'node:events';
import {
  AF_UNIX, EINTR, SCM_CREDENTIALS, SHUT_RDWR, SOCK_CLOEXEC, SOCK_DGRAM, SOL_SOCKET, SO_PASSCRED,
  errno, koffi, libc, sockaddrUn,
} from '../domain/libc.js';

export interface NotifyMessage {
  /** Sender as seen from the host PID namespace (0 when the kernel attached no credentials). */
  pid: number;
  uid: number;
  gid: number;
  fields: Map<string, string>;
  raw: string;
}

const BUF_SIZE = 4096;
const CTRL_SIZE = 64;

/** Parse `KEY=VALUE` lines of one notification. */
export function parseNotify(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of text.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) m.set(line.slice(0, i), line.slice(i + 1));
  }
  return m;
}

export declare interface NotifySocket {
  on(event: 'message', l: (m: NotifyMessage) => void): this;
  on(event: 'error', l: (e: Error) => void): this;
  on(event: 'newListener', l: (event: string) => void): this;
}

export class NotifySocket extends EventEmitter {
  private fd: number;
  private closed = false;
  private readonly backlog: NotifyMessage[] = [];
  private readonly data = koffi().alloc('uint8_t', BUF_SIZE);
  private readonly ctrl = koffi().alloc('uint8_t', CTRL_SIZE);
  private readonly iov = koffi().alloc(libc().types.iovec as never, 1);
  private readonly hdr = koffi().alloc(libc().types.msghdr as never, 1);
  private readonly done: Promise<void>;
  private resolveDone!: () => void;

  /** Bind a new socket at `socketPath` (replacing a stale file). */
  constructor(readonly socketPath: string) {
    super();
    const c = libc();
    fs.rmSync(socketPath, { force: true });
    this.fd = c.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (this.fd < 0) throw new Error(`notify socket: errno ${errno()}`);
    const addr = sockaddrUn(socketPath);
    if (c.bind(this.fd, addr, addr.length) !== 0) {
      const e = errno();
      c.close(this.fd);
      throw new Error(`cannot bind notify socket ${socketPath}: errno ${e}`);
    }
    const one = Buffer.alloc(4); one.writeInt32LE(1);
    c.setsockopt(this.fd, SOL_SOCKET, SO_PASSCRED, one, 4);
    this.done = new Promise((r) => { this.resolveDone = r; });
    this.on('newListener', (event: string) => {
      if (event !== 'message' || this.backlog.length === 0) return;
      process.nextTick(() => { for (const m of this.backlog.splice(0)) this.emit('message', m); });
    });
    this.receive();
  }

  private receive(): void {
    const c = libc();
    koffi().encode(this.iov, c.types.iovec as never, { iov_base: this.data, iov_len: BUF_SIZE });
    koffi().encode(this.hdr, c.types.msghdr as never, {
      msg_name: null, msg_namelen: 0, msg_iov: this.iov, msg_iovlen: 1,
      msg_control: this.ctrl, msg_controllen: CTRL_SIZE, msg_flags: 0,
    });
    c.recvmsg.async(this.fd, this.hdr, 0, (err, n) => {
      if (this.closed) { this.finish(); return; }
      if (err || n < 0) {
        // EINTR and friends: try again; anything else ends the receiver.
        if (!err && errno() === EINTR) { this.receive(); return; }
        this.emit('error', new Error(`notify recvmsg failed: ${String(err ?? `errno ${errno()}`)}`));
        this.finish();
        return;
      }
      if (n > 0) {
        const text = Buffer.from(koffi().view(this.data, n)).toString('utf8');
        const h = koffi().decode(this.hdr, c.types.msghdr as never) as { msg_controllen: number | bigint };
        const creds = parseCredentials(Buffer.from(koffi().view(this.ctrl, Number(h.msg_controllen))));
        this.deliver({ ...creds, fields: parseNotify(text), raw: text });
      }
      this.receive();
    });
  }

  /** Messages that arrive before anyone listens are kept, not lost (a payload may be ready very early). */
  private deliver(m: NotifyMessage): void {
    if (this.listenerCount('message') > 0) this.emit('message', m);
    else this.backlog.push(m);
  }

  private finish(): void {
    if (this.fd >= 0) { libc().close(this.fd); this.fd = -1; }
    this.resolveDone();
  }

  /** Stop receiving, close the socket and remove its file. */
  async close(): Promise<void> {
    if (this.closed) return this.done;
    this.closed = true;
    // Wake the blocked recvmsg: shutdown() makes it return 0 on a datagram socket.
    libc().shutdown(this.fd, SHUT_RDWR);
    fs.rmSync(this.socketPath, { force: true });
    await this.done;
  }
}

/** Walk the control messages of one datagram for SCM_CREDENTIALS (x86-64 layout: 16-byte header). */
export function parseCredentials(ctrl: Buffer): { pid: number; uid: number; gid: number } {
  let off = 0;
  while (off + 16 <= ctrl.length) {
    const len = Number(ctrl.readBigUInt64LE(off));
    const level = ctrl.readInt32LE(off + 8);
    const type = ctrl.readInt32LE(off + 12);
    if (len < 16) break;
    if (level === SOL_SOCKET && type === SCM_CREDENTIALS && len >= 28) {
      return { pid: ctrl.readInt32LE(off + 16), uid: ctrl.readUInt32LE(off + 20), gid: ctrl.readUInt32LE(off + 24) };
    }
    off += (len + 7) & ~7;
  }
  return { pid: 0, uid: 0, gid: 0 };
}

/**
 * Send one notification to `$NOTIFY_SOCKET` of this process (what sd_notify does), e.g. to tell whoever
 * supervises berth-spawn that the container is ready. Silently does nothing without NOTIFY_SOCKET.
 */
export function sdNotify(message: string, socketPath = process.env.NOTIFY_SOCKET): boolean {
  if (!socketPath) return false;
  const c = libc();
  const path = socketPath.startsWith('@') ? `\0${socketPath.slice(1)}` : socketPath;
  const addr = sockaddrUn(path);
  // An abstract address has no terminating NUL: its length is exactly the name's.
  const alen = socketPath.startsWith('@') ? addr.length - 1 : addr.length;
  const fd = c.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  try {
    const buf = Buffer.from(message);
    return c.sendto(fd, buf, buf.length, 0, addr, alen) === buf.length;
  } finally {
    c.close(fd);
  }
}
