// QMP (the QEMU Machine Protocol) client: one JSON object per line each way. The greeting is answered with
// qmp_capabilities; commands carry an id so replies are matched even when events come in between.

import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';

export class QmpError extends Error {
  override name = 'QmpError';
  constructor(
    readonly command: string,
    readonly errorClass: string,
    message: string,
  ) {
    super(`QMP ${command}: ${errorClass}: ${message}`);
  }
}

export interface QmpEvent {
  event: string;
  data?: unknown;
  timestamp?: { seconds: number; microseconds: number };
}

interface Pending {
  command: string;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

export class QmpClient extends EventEmitter<{ event: [QmpEvent]; close: [] }> {
  private buf = '';
  private nextId = 1;
  private readonly pending = new Map<string, Pending>();
  private greeting?: (v: unknown) => void;
  private closedError?: Error;
  readonly events: QmpEvent[] = [];

  private constructor(private readonly socket: Socket) {
    super();
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => this.onData(d));
    // qemu answers "quit" and then drops the connection: a reset is a normal end here
    socket.on('error', (e) => this.fail(e));
    socket.on('close', () => this.fail(new Error('QMP connection closed')));
  }

  /** Takes a connected socket (qemu connected to our listener), waits for the greeting and negotiates capabilities. */
  static async connect(socket: Socket, timeoutMs = 5000): Promise<QmpClient> {
    const c = new QmpClient(socket);
    await withTimeout(
      new Promise((resolve, reject) => {
        c.greeting = resolve;
        c.once('close', () => reject(c.closedError ?? new Error('QMP connection closed before greeting')));
      }),
      timeoutMs,
      'QMP greeting',
    );
    await c.execute('qmp_capabilities', undefined, timeoutMs);
    return c;
  }

  get closed(): boolean {
    return this.closedError !== undefined;
  }

  execute<T = unknown>(command: string, args?: Record<string, unknown>, timeoutMs = 5000): Promise<T> {
    if (this.closedError) return Promise.reject(new QmpError(command, 'Closed', this.closedError.message));
    const id = `berth-${this.nextId++}`;
    const p = new Promise<T>((resolve, reject) => {
      this.pending.set(id, { command, resolve: resolve as (v: unknown) => void, reject });
    });
    this.socket.write(JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}), id }) + '\n');
    return withTimeout(p, timeoutMs, `QMP ${command}`).finally(() => this.pending.delete(id));
  }

  /** Resolves with the first event of that name seen from now on (or already seen, when `past` is true). */
  waitEvent(name: string, timeoutMs: number, past = false): Promise<QmpEvent> {
    const seen = past ? this.events.find((e) => e.event === name) : undefined;
    if (seen) return Promise.resolve(seen);
    return withTimeout(
      new Promise<QmpEvent>((resolve, reject) => {
        const onEvent = (e: QmpEvent): void => {
          if (e.event !== name) return;
          this.off('event', onEvent);
          resolve(e);
        };
        this.on('event', onEvent);
        this.once('close', () => reject(new Error(`QMP closed while waiting for ${name}`)));
      }),
      timeoutMs,
      `QMP event ${name}`,
    );
  }

  close(): void {
    this.socket.destroy();
  }

  private onData(d: string): void {
    this.buf += d;
    let i: number;
    while ((i = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, i).trim();
      this.buf = this.buf.slice(i + 1);
      if (!line) continue;
      let msg: Record<string, unknown>;
      try {
        msg = JSON.parse(line) as Record<string, unknown>;
      } catch {
        continue; // not JSON: nothing we can act on
      }
      this.onMessage(msg);
    }
  }

  private onMessage(msg: Record<string, unknown>): void {
    if ('QMP' in msg) {
      this.greeting?.(msg.QMP);
      this.greeting = undefined;
      return;
    }
    if (typeof msg.event === 'string') {
      const e = msg as unknown as QmpEvent;
      this.events.push(e);
      this.emit('event', e);
      return;
    }
    const id = typeof msg.id === 'string' ? msg.id : undefined;
    const p = id ? this.pending.get(id) : undefined;
    if (!p) return;
    if ('error' in msg) {
      const err = msg.error as { class?: string; desc?: string };
      p.reject(new QmpError(p.command, err.class ?? 'GenericError', err.desc ?? 'unknown error'));
    } else p.resolve(msg.return);
  }

  private fail(e: Error): void {
    if (this.closedError) return;
    this.closedError = e;
    for (const p of this.pending.values()) p.reject(new QmpError(p.command, 'Closed', e.message));
    this.pending.clear();
    this.emit('close');
  }
}

export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}
