/**
 * Readiness of descriptors without blocking the event loop: one poll(2) over every watched
 * descriptor runs on the libuv thread pool (so all connections together hold one pool thread
 * while they wait), and a pipe wakes it whenever the set changes. Callbacks run on the main thread.
 * A descriptor is closed only between two polls, never while the pool thread may be looking at it.
 */
import { closeFd, drainFd, makePipe, pokeFd, pollAsync } from './unix-socket.js';

export type ReadyCallback = (revents: number) => void;

interface Watch {
  events: number;
  cb: ReadyCallback;
}

class Poller {
  private watches = new Map<number, Watch>();
  private wake: [number, number] | null = null;
  private running = false;
  private dispatching = false;
  private toClose: number[] = [];

  /** Watches `fd` for `events` (POLLIN/POLLOUT); replaces an earlier watch of the same fd. */
  watch(fd: number, events: number, cb: ReadyCallback): void {
    this.watches.set(fd, { events, cb });
    this.kick();
  }

  /** Stops watching `fd` and closes it once no poll can still be looking at it. */
  release(fd: number): void {
    this.watches.delete(fd);
    this.toClose.push(fd);
    this.kick();
  }

  private kick(): void {
    if (this.dispatching) return; // the dispatch loop polls again when it is done
    if (this.running) {
      if (this.wake) pokeFd(this.wake[1]);
      return;
    }
    for (const fd of this.toClose.splice(0)) closeFd(fd);
    if (this.watches.size === 0) {
      if (this.wake) {
        closeFd(this.wake[0]);
        closeFd(this.wake[1]);
        this.wake = null;
      }
      return;
    }
    this.wake ??= makePipe();
    const fds = [this.wake[0]];
    const events = [0x1];
    const order: [number, Watch][] = [];
    for (const [fd, w] of this.watches) {
      if (w.events === 0) continue;
      fds.push(fd);
      events.push(w.events);
      order.push([fd, w]);
    }
    this.running = true;
    const wakeFd = this.wake[0];
    pollAsync(fds, events, -1).then(
      (revents) => {
        this.running = false;
        if (revents[0]) drainFd(wakeFd);
        this.dispatching = true;
        try {
          order.forEach(([fd, w], i) => {
            const r = revents[i + 1];
            // Only a watch still current gets told; a replaced or released one is stale.
            if (r && this.watches.get(fd) === w) w.cb(r);
          });
        } finally {
          this.dispatching = false;
          this.kick();
        }
      },
      () => {
        this.running = false;
        setTimeout(() => this.kick(), 10);
      },
    );
  }
}

/** The process's one poller. */
export const poller = new Poller();
