// Noticing that pinned leaders exit: one epoll instance holds every leader's pidfd and is waited on by a
// koffi async call (a libuv pool thread). Adding or removing leaders is epoll_ctl from the main thread,
// which the kernel allows while another thread waits, so the cost per change is O(1) for any number of
// leaders. Once no leader is watched the waiting call is ended after a short linger (a machine registered
// right after the last one went, as in a Register/Unregister cycle, reuses the waiting call instead of
// starting another), so the watcher keeps the process alive by itself for at most LINGER_MS.

import { EventEmitter } from 'node:events';
import {
  EFD_CLOEXEC, EFD_NONBLOCK, EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLLIN, errno, libc, O_CLOEXEC,
} from '../../domain/libc.js';
import type { Leader } from './leader.js';

/** struct epoll_event is packed on x86-64: u32 events, u64 data. */
const EVENT_SIZE = 12;
const BATCH = 256;
/** How long the waiting call outlives the last watched leader. */
const LINGER_MS = 500;

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
  #ev = Buffer.alloc(EVENT_SIZE);
  #linger?: NodeJS.Timeout;

  /** The epoll instance and its wake-up eventfd are made with the first watched leader. */
  #open(): void {
    if (this.#epfd >= 0) return;
    this.#epfd = libc().epoll_create1(O_CLOEXEC);
    if (this.#epfd < 0) throw new Error(`epoll_create1 failed: errno ${errno()}`);
    this.#wakefd = libc().eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
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
    this.#stopLinger();
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
    if (this.#byKey.size === 0 && this.#waiting && !this.#linger) {
      this.#linger = setTimeout(() => {
        this.#linger = undefined;
        if (this.#byKey.size === 0) this.#wake();
      }, LINGER_MS).unref();
    }
  }

  #stopLinger(): void {
    if (this.#linger) clearTimeout(this.#linger);
    this.#linger = undefined;
  }

  /** Stop watching everything and release the epoll instance (once the waiting call has returned). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const key of [...this.#byKey.keys()]) this.unwatch(key);
    this.#stopLinger();
    if (this.#waiting) this.#wake();
    else this.#release();
  }

  #ctl(op: number, fd: number, token: bigint): number {
    const ev = this.#ev;
    ev.writeUInt32LE(EPOLLIN, 0);
    ev.writeBigUInt64LE(token, 4);
    return libc().epoll_ctl(this.#epfd, op, fd, ev);
  }

  #wake(): void {
    if (!this.#waiting) return;
    const one = Buffer.alloc(8);
    one.writeBigUInt64LE(1n);
    libc().write(this.#wakefd, one, 8);
  }

  #arm(): void {
    if (this.#waiting || this.#closed || this.#byKey.size === 0) return;
    this.#waiting = true;
    libc().epoll_wait.async(this.#epfd, this.#buf, BATCH, -1, (err: unknown, n: number) => {
      this.#waiting = false;
      if (this.#closed) return this.#release();
      const exited: string[] = [];
      if (!err && n > 0) {
        for (let i = 0; i < n; i++) {
          const token = this.#buf.readBigUInt64LE(i * EVENT_SIZE + 4);
          if (token === 0n) {
            libc().read(this.#wakefd, Buffer.alloc(8), 8);
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
    if (this.#epfd >= 0) libc().close(this.#epfd);
    if (this.#wakefd >= 0) libc().close(this.#wakefd);
    this.#epfd = this.#wakefd = -1;
  }
}
