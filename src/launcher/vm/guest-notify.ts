// A VM guest's notifications (READY=1, STATUS=…, EXIT_STATUS=…), one assignment per line, sd_notify-style:
// qemu connects the guest's virtio-serial port to the unix stream socket this listener serves, and where
// vsock exists the same lines also arrive over it (fed in through feed()).

import { EventEmitter } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { rmSync } from 'node:fs';

export interface NotifyState {
  ready: boolean;
  status?: string;
  exitStatus?: number;
  /** every assignment seen, last value wins */
  fields: Record<string, string>;
}

/** Splits a message into assignments; lines without "=" are ignored. */
export function parseNotifyLines(text: string): [string, string][] {
  const out: [string, string][] = [];
  for (const line of text.split(/[\r\n]+/)) {
    const i = line.indexOf('=');
    if (i <= 0) continue;
    out.push([line.slice(0, i), line.slice(i + 1)]);
  }
  return out;
}

export class GuestNotifyListener extends EventEmitter<{ ready: []; status: [string]; field: [string, string]; connected: [] }> {
  readonly state: NotifyState = { ready: false, fields: {} };
  private server?: Server;
  private readonly conns = new Set<Socket>();

  constructor(readonly path: string) {
    super();
  }

  listen(): Promise<void> {
    rmSync(this.path, { force: true });
    const server = createServer((c) => this.accept(c));
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.path, () => {
        server.off('error', reject);
        resolve();
      });
    });
  }

  /** Feeds text as if it came from the guest (used by the vsock path, and by tests). */
  feed(text: string): void {
    for (const [k, v] of parseNotifyLines(text)) {
      this.state.fields[k] = v;
      this.emit('field', k, v);
      if (k === 'READY' && v === '1' && !this.state.ready) {
        this.state.ready = true;
        this.emit('ready');
      } else if (k === 'STATUS') {
        this.state.status = v;
        this.emit('status', v);
      } else if (k === 'EXIT_STATUS' && /^[0-9]+$/.test(v)) {
        this.state.exitStatus = Number(v) & 0xff;
      }
    }
  }

  waitReady(): Promise<void> {
    if (this.state.ready) return Promise.resolve();
    return new Promise((resolve) => this.once('ready', resolve));
  }

  close(): void {
    for (const c of this.conns) c.destroy();
    this.server?.close();
    rmSync(this.path, { force: true });
  }

  private accept(c: Socket): void {
    this.conns.add(c);
    this.emit('connected');
    let buf = '';
    c.setEncoding('utf8');
    c.on('data', (d: string) => {
      buf += d;
      const i = buf.lastIndexOf('\n');
      if (i < 0) return;
      this.feed(buf.slice(0, i + 1));
      buf = buf.slice(i + 1);
    });
    c.on('end', () => {
      if (buf) this.feed(buf);
      buf = '';
    });
    c.on('error', () => {});
    c.on('close', () => this.conns.delete(c));
  }
}
