/** Registering and unregistering benchmark machines over io.systemd.Machine (berth and machined alike). */
import { performance } from 'node:perf_hooks';
import { VarlinkClient } from '../../src/varlink/client.js';

export interface MachineSpec {
  name: string;
  leader: number;
}

/** Registers every machine on one connection with up to `window` calls in flight; returns the seconds taken. */
export async function registerAll(socket: string, machines: MachineSpec[], window = 64): Promise<number> {
  const c = await VarlinkClient.connect(`unix:${socket}`, { timeout: 60_000 });
  const t0 = performance.now();
  try {
    let next = 0;
    let failure: Error | undefined;
    const worker = async () => {
      while (next < machines.length && !failure) {
        const m = machines[next++]!;
        try {
          await c.callRaw('io.systemd.Machine.Register', { name: m.name, class: 'container', leader: m.leader });
        } catch (e) {
          failure ??= new Error(`Register ${m.name} (leader ${m.leader}): ${describe(e)}`);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(window, machines.length) }, worker));
    if (failure) throw failure;
    return (performance.now() - t0) / 1000;
  } finally {
    c.close();
  }
}

/** Unregisters machines, ignoring those already gone; never throws. */
export async function unregisterAll(socket: string, names: string[]): Promise<void> {
  if (names.length === 0) return;
  let c: VarlinkClient;
  try {
    c = await VarlinkClient.connect(`unix:${socket}`, { timeout: 30_000 });
  } catch {
    return;
  }
  try {
    await Promise.all(names.map((name) => c.callRaw('io.systemd.Machine.Unregister', { name }).catch(() => undefined)));
  } finally {
    c.close();
  }
}

/**
 * Register followed by Unregister, over and over on one connection, one call at a time, rotating through
 * `machines` (machined 257 frees an unregistered machine a moment after answering Unregister, so the same
 * name registered right away can still exist). A Register that meets the previous incarnation is retried
 * and counted. Returns cycles per second and the number of retries.
 */
/**
 * Register+Unregister cycles over one connection for `seconds`, after `warmup` seconds of the same (at
 * least 20 cycles), as every other figure of the bench is taken after a warm-up.
 */
export async function registerCycles(socket: string, machines: MachineSpec[], seconds: number, warmup = 0): Promise<{ rate: number; retries: number }> {
  const c = await VarlinkClient.connect(`unix:${socket}`, { timeout: 30_000 });
  let retries = 0;
  let k = 0;
  const cycle = async () => {
    const m = machines[k++ % machines.length]!;
    const giveUp = performance.now() + 5000;
    for (let attempt = 0; ; attempt++) {
      try {
        await c.callRaw('io.systemd.Machine.Register', { name: m.name, class: 'container', leader: m.leader });
        break;
      } catch (e) {
        const exists = /MachineExists|EEXIST|errno.*17/.test(describe(e));
        if (!exists || performance.now() > giveUp) throw new Error(`Register ${m.name}: ${describe(e)} (after ${attempt} retries)`);
        retries++;
        // A busy host can keep machined from freeing the name for a while: back off after a few tries.
        await new Promise((r) => (attempt < 20 ? setImmediate(r) : setTimeout(r, 1)));
      }
    }
    try {
      await c.callRaw('io.systemd.Machine.Unregister', { name: m.name });
    } catch (e) {
      throw new Error(`Unregister ${m.name}: ${describe(e)}`);
    }
  };
  try {
    const warm = performance.now() + warmup * 1000;
    for (let i = 0; i < 20 || performance.now() < warm; i++) await cycle();
    retries = 0;
    let n = 0;
    const t0 = performance.now();
    const end = t0 + seconds * 1000;
    while (performance.now() < end) {
      await cycle();
      n++;
    }
    return { rate: n / ((performance.now() - t0) / 1000), retries };
  } finally {
    c.close();
  }
}

/** Time to receive the whole `List` stream (with `more`) and the number of entries. */
export async function listStream(socket: string): Promise<{ seconds: number; entries: number }> {
  const c = await VarlinkClient.connect(`unix:${socket}`, { timeout: 120_000 });
  try {
    const t0 = performance.now();
    let entries = 0;
    for await (const _ of c.moreRaw('io.systemd.Machine.List', {})) entries++;
    return { seconds: (performance.now() - t0) / 1000, entries };
  } finally {
    c.close();
  }
}

export function describe(e: unknown): string {
  const err = e as { error?: unknown; parameters?: Record<string, unknown>; message?: string };
  if (typeof err?.error === 'string') {
    const p = err.parameters && Object.keys(err.parameters).length ? ` ${JSON.stringify(err.parameters)}` : '';
    return `${err.error}${p}`;
  }
  return e instanceof Error ? e.message : String(e);
}
