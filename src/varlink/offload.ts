/**
 * The event loop's half of parsing large messages in a worker thread (see parse-worker.ts).
 *
 * One worker serves every connection of a server. It starts with the first large message, so a
 * socket-activated server that only sees ordinary calls never pays for it, and it exits after a few
 * idle seconds to give its memory back. If it fails or exits with messages outstanding, those
 * messages are parsed on the event loop as before: slower for everyone, but nothing is lost.
 */
import v8 from 'node:v8';
import vm from 'node:vm';
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { IncomingCall } from './call-parser.js';
import type { ParseResponse } from './parse-worker.js';
import { socketLibc } from './peer.js';

/** What became of a message: a call to queue, a reason to drop the connection, or "parse it here". */
export type Offloaded = { call: IncomingCall } | { drop: string } | { local: true };

/** Messages at least this long go to the worker (a worst-case JSON.parse of 32 KiB takes ~4 ms). */
export const DEFAULT_OFFLOAD_ABOVE = 32 * 1024;
const IDLE_EXIT_MS = 5000;
const WORKER_HEAP_MB = 512;

/**
 * After this many bytes of large messages, a full collection is asked for once they are done. Their
 * buffers (the received chunks, the joined message, the copy for the worker) live outside the JS heap,
 * and a server that goes quiet after them allocates too little for V8 to ever collect them: measured,
 * four 16 MiB messages left berthd at 186 MB for good instead of its 50 MB. After the collection malloc
 * is asked to trim its heap, where such buffers end up once its mmap threshold has grown.
 */
const COLLECT_AFTER_BYTES = 4 * 1024 * 1024;
const COLLECT_DELAY_MS = 500;

let gcFunction: (() => void) | null | undefined;

/** V8's full collection (global gc when node runs with --expose-gc, else turned on here), or undefined. */
function collector(): (() => void) | undefined {
  if (gcFunction === undefined) {
    const g = (globalThis as { gc?: () => void }).gc;
    if (typeof g === 'function') gcFunction = g;
    else {
      try {
        v8.setFlagsFromString('--expose-gc');
        gcFunction = vm.runInNewContext('gc') as () => void;
      } catch {
        gcFunction = null;
      }
    }
  }
  return gcFunction ?? undefined;
}

export class ParseOffload {
  private worker?: Worker;
  private nextId = 1;
  private readonly pending = new Map<number, (r: Offloaded) => void>();
  private idleTimer?: NodeJS.Timeout;
  /** Bytes of large messages since the last collection asked for. */
  private bigBytes = 0;
  private collectTimer?: NodeJS.Timeout;

  constructor(
    private readonly module: URL | string,
    private readonly logger: Logger,
  ) {}

  /** Sends a message's bytes to the worker; they are copied, so the caller's buffer stays usable. */
  parse(bytes: Buffer): Promise<Offloaded> {
    const worker = this.start();
    if (!worker) return Promise.resolve({ local: true });
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    const id = this.nextId++;
    this.bigBytes += bytes.length;
    const copy = new Uint8Array(bytes);
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      worker.postMessage({ id, bytes: copy }, [copy.buffer]);
    });
  }

  close(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    if (this.collectTimer) clearTimeout(this.collectTimer);
    const w = this.worker;
    this.worker = undefined;
    this.settleAll();
    void w?.terminate();
  }

  private start(): Worker | undefined {
    if (this.worker) return this.worker;
    let w: Worker;
    try {
      // A cap on the old generation makes V8 collect before the heap grows far past one message: the
      // worst 16 MiB message (arrays nested 2,000 deep) needs about 240 MiB while it is parsed.
      w = new Worker(this.module, { resourceLimits: { maxOldGenerationSizeMb: WORKER_HEAP_MB } });
    } catch (err) {
      this.logger.warn({ err }, 'cannot start the parse worker; parsing large messages on the event loop');
      return undefined;
    }
    w.unref();
    w.on('message', (res: ParseResponse) => this.settle(res));
    w.on('error', (err) => {
      this.logger.warn({ err }, 'parse worker failed; parsing its messages on the event loop');
      if (this.worker === w) this.worker = undefined;
      this.settleAll();
    });
    w.on('exit', () => {
      if (this.worker === w) this.worker = undefined;
      this.settleAll();
    });
    this.worker = w;
    return w;
  }

  private settle(res: ParseResponse): void {
    const resolve = this.pending.get(res.id);
    if (!resolve) return;
    this.pending.delete(res.id);
    if ('drop' in res) resolve({ drop: res.drop });
    else {
      const call: IncomingCall = { ...res.header, parameters: {} };
      call.offloaded = 'invalid' in res ? { invalid: res.invalid } : { text: res.text, checked: res.checked };
      resolve({ call });
    }
    if (this.pending.size === 0) this.collectSoon();
    if (this.pending.size === 0 && this.worker) {
      const w = this.worker;
      this.idleTimer = setTimeout(() => {
        if (this.worker === w && this.pending.size === 0) {
          this.worker = undefined;
          void w.terminate();
        }
      }, IDLE_EXIT_MS).unref();
    }
  }

  /** Once no large message is outstanding, and enough of them went by: a full collection, a moment later. */
  private collectSoon(): void {
    if (this.bigBytes < COLLECT_AFTER_BYTES || this.collectTimer) return;
    this.collectTimer = setTimeout(() => {
      this.collectTimer = undefined;
      if (this.pending.size > 0) return;
      this.bigBytes = 0;
      collector()?.();
      // The buffers were large enough for malloc to keep their pages in its heap after free.
      try {
        socketLibc().mallocTrim(0);
      } catch {
        /* not glibc, or no koffi: the memory stays with the process until reused */
      }
    }, COLLECT_DELAY_MS).unref();
  }

  /** Everything outstanding is parsed on the event loop instead. */
  private settleAll(): void {
    for (const resolve of this.pending.values()) resolve({ local: true });
    this.pending.clear();
  }
}
