/**
 * Scenario 1, fuzz: generated messages against a running berthd, and interface texts against the
 * IDL parser in-process.
 *
 * Wire: every message goes on a raw connection followed by a sentinel call whose reply carries a
 * unique token; the round is over when the token comes back or the server closes the connection.
 * A watchdog client asks GetInfo every 200 ms and counts a hang when no answer comes within 1 s;
 * berthd exiting counts as a crash (it is restarted so the run goes on). Error-level log lines
 * (handler failures, uncaught exceptions that main.ts swallows) are counted too: each is a bug.
 *
 * Safety: the fuzzer must never make berthd act on a real process. Every pid-like value in a
 * generated call (`leader`, `pid`, numbers and numeric strings in the pid range) is replaced by
 * the pid of a sacrificial sleeper, and a Register without a leader gets one (berthd would
 * otherwise take the caller, this process). Images live in a temp dir given with --image-dir.
 */
import fc from 'fast-check';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { parseInterface, formatInterface, IdlError, type Interface } from '../../src/varlink/idl/index.js';
import {
  call,
  connect,
  listAll,
  logLines,
  mib,
  removeScopes,
  rmrf,
  rssKiB,
  sleeper,
  startBerthd,
  tempRuntime,
  within,
  machineSocket,
  userdbSocket,
  cannotRunBerthd,
  isRoot,
  type Berthd,
  type ScenarioOptions,
  type ScenarioResult,
} from './common.js';
import {
  hugeArb,
  idlTextArb,
  mutatedCallArb,
  nestedArb,
  randomBytesArb,
  randomJsonArb,
  wrongTypeCases,
  type FuzzMessage,
  type MethodInfo,
} from './fuzz-gen.js';

export interface FuzzOptions extends ScenarioOptions {
  /** Wire messages to send (default 100,000; short: until the time budget). */
  messages?: number;
  /** Time budget in ms (default: none for the full run, 40 s short). */
  budgetMs?: number;
  /** IDL texts for the parser (default 30,000; short 5,000). */
  idlTexts?: number;
  seed?: number;
}

const PID_MAX = (() => {
  try {
    return Number(fs.readFileSync('/proc/sys/kernel/pid_max', 'utf8').trim());
  } catch {
    return 4194304;
  }
})();

/** Sacrificial leaders, replaced when the fuzz kills them. */
class SleeperPool {
  private readonly live = new Map<number, ChildProcess>();
  private stopped = false;
  constructor(size: number) {
    for (let i = 0; i < size; i++) this.add();
  }
  private add(): void {
    if (this.stopped) return;
    const c = sleeper();
    this.live.set(c.pid, c);
    c.once('exit', () => {
      this.live.delete(c.pid);
      this.add();
    });
  }
  pick(n: number): number {
    const pids = [...this.live.keys()];
    return pids[n % pids.length] ?? 2 ** 30;
  }
  pids(): number[] {
    return [...this.live.keys()];
  }
  stop(): void {
    this.stopped = true;
    for (const c of this.live.values()) c.kill('SIGKILL');
  }
}

/** Makes a call safe to send: pid-like values point at sleepers, Register always has a leader. */
function sanitize(method: string | undefined, params: Record<string, unknown>, pool: SleeperPool, names: Set<string>, salt: number): Record<string, unknown> {
  let n = salt;
  const fix = (v: unknown): unknown => {
    if (typeof v === 'number' && Number.isInteger(v) && v >= 2 && v < PID_MAX) return pool.pick(n++);
    if (typeof v === 'string' && /^\s*\+?0*\d{1,8}\s*$/.test(v) && Number(v) >= 2 && Number(v) < PID_MAX) return String(pool.pick(n++));
    return v;
  };
  const walk = (o: unknown, depth: number): unknown => {
    if (depth > 8 || o === null || typeof o !== 'object') return o;
    if (Array.isArray(o)) return o.map((x) => walk(x, depth + 1));
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(o)) {
      if (k === 'leader' || k === 'pid') out[k] = typeof v === 'object' && v !== null ? walk(v, depth + 1) : fix(v);
      else out[k] = walk(v, depth + 1);
    }
    return out;
  };
  const p = walk(params, 0) as Record<string, unknown>;
  const m = method ?? '';
  if (/\.Register(ReplacingDead)?$/.test(m)) {
    // Always name a sleeper in `leader`: without it (or with leaderProcessId {pid: 0}) berthd would take
    // the caller. A leaderProcessId naming another process then only makes the call fail.
    if (p.leader === undefined || p.leader === null) p.leader = pool.pick(n++);
    if (typeof p.name === 'string') names.add(p.name);
  }
  if (/SetLogLevel/i.test(m) && typeof p.level === 'number' && Number.isInteger(p.level) && p.level >= 0 && p.level <= 7) p.level = 4;
  return p;
}

/** One raw connection that sends a message and waits for the sentinel reply or the close. */
class Sender {
  private sock?: net.Socket;
  private buf = '';
  private waiter?: () => void;
  private closed = true;
  private seq = 0;
  constructor(
    private readonly path: string,
    private readonly id: number,
  ) {}

  private async open(): Promise<void> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        this.sock = await within(
          new Promise<net.Socket>((resolve, reject) => {
            const s = net.connect(this.path);
            s.once('connect', () => resolve(s));
            s.once('error', reject);
          }),
          5000,
          'connect',
        );
        break;
      } catch (e) {
        if (Date.now() > deadline) throw e;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    const s = this.sock!;
    this.closed = false;
    this.buf = '';
    s.on('data', (d: Buffer) => {
      this.buf += d.toString('latin1');
      if (this.buf.length > 1 << 20) this.buf = this.buf.slice(-4096);
      this.waiter?.();
    });
    s.on('error', () => undefined);
    s.on('close', () => {
      this.closed = true;
      this.waiter?.();
    });
  }

  /** Sends one message; resolves with what came back before the sentinel and how the round ended. */
  async round(data: Buffer, timeoutMs: number): Promise<{ end: 'sentinel' | 'closed' | 'timeout' | 'stream'; received: string }> {
    if (this.closed || !this.sock) await this.open();
    const s = this.sock!;
    const token = `soak.sentinel.${this.id}.${++this.seq}`;
    this.buf = '';
    s.write(data);
    s.write('\0');
    s.write(JSON.stringify({ method: 'org.varlink.service.GetInterfaceDescription', parameters: { interface: token } }) + '\0');
    const marker = `"${token}"`;
    const started = Date.now();
    let streamSeen = 0;
    for (;;) {
      const i = this.buf.indexOf(marker);
      if (i !== -1) {
        const received = this.buf;
        return { end: 'sentinel', received };
      }
      if (this.closed) return { end: 'closed', received: this.buf };
      if (!streamSeen && this.buf.includes('"continues":true')) streamSeen = Date.now();
      const now = Date.now();
      if (streamSeen && now - streamSeen > 300) {
        this.drop();
        return { end: 'stream', received: this.buf };
      }
      if (now - started > timeoutMs) {
        this.drop();
        return { end: 'timeout', received: this.buf };
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 100);
        this.waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.waiter = undefined;
    }
  }

  drop(): void {
    this.sock?.destroy();
    this.closed = true;
  }
}

async function fetchInterfaces(socket: string): Promise<{ name: string; text: string }[]> {
  const c = await connect(socket);
  try {
    const info = await c.callRaw('org.varlink.service.GetInfo', {});
    const out: { name: string; text: string }[] = [];
    for (const name of info.interfaces as string[]) {
      const d = await c.callRaw('org.varlink.service.GetInterfaceDescription', { interface: name });
      out.push({ name, text: d.description as string });
    }
    return out;
  } finally {
    c.close();
  }
}

function methodsOf(ifaces: Interface[], socket: 'machine' | 'userdb'): MethodInfo[] {
  const out: MethodInfo[] = [];
  for (const iface of ifaces) {
    for (const m of iface.members) if (m.kind === 'method') out.push({ iface, method: m, full: `${iface.name}.${m.name}`, socket });
  }
  return out;
}

/** In-process IDL fuzz: the parser may only throw IdlError; what it accepts must print and re-parse. */
export function fuzzIdl(realTexts: string[], runs: number, seed: number): { texts: number; accepted: number; foreign: number; roundtrip: number; examples: string[] } {
  const arb = idlTextArb(realTexts);
  let texts = 0;
  let accepted = 0;
  let foreign = 0;
  let roundtrip = 0;
  const examples: string[] = [];
  const batch = 1000;
  for (let b = 0; texts < runs; b++) {
    for (const text of fc.sample(arb, { numRuns: Math.min(batch, runs - texts), seed: seed + b })) {
      texts++;
      let ast: Interface;
      try {
        ast = parseInterface(text);
      } catch (e) {
        if (!(e instanceof IdlError)) {
          foreign++;
          if (examples.length < 5) examples.push(`parseInterface threw ${(e as Error)?.name}: ${(e as Error)?.message} for ${JSON.stringify(text.slice(0, 300))} (length ${text.length})`);
        }
        continue;
      }
      accepted++;
      try {
        const printed = formatInterface(ast);
        const again = formatInterface(parseInterface(printed));
        if (again !== printed) throw new Error('printing is not stable');
      } catch (e) {
        roundtrip++;
        if (examples.length < 5) examples.push(`accepted text does not print and re-parse (${(e as Error).message}): ${JSON.stringify(text.slice(0, 300))}`);
      }
    }
  }
  return { texts, accepted, foreign, roundtrip, examples };
}

export async function runFuzz(opts: FuzzOptions): Promise<ScenarioResult> {
  const name = 'fuzz';
  const why = cannotRunBerthd() ?? (isRoot() ? undefined : 'needs root (berthd creates cgroup scopes)');
  if (why) return { name, figures: {}, failures: [], skipped: why };
  const seed = opts.seed ?? Date.now() % 1_000_000;
  const target = opts.messages ?? (opts.short ? 1_000_000 : 100_000);
  const budget = opts.budgetMs ?? (opts.short ? 35_000 : 20 * 60_000);
  const idlRuns = opts.idlTexts ?? (opts.short ? 5000 : 30_000);
  const failures: string[] = [];
  const notes: string[] = [];

  const runtime = tempRuntime('fuzz');
  const images = path.join(runtime, 'images');
  fs.mkdirSync(path.join(images, 'img'), { recursive: true });
  fs.mkdirSync(path.join(images, 'img2'), { recursive: true });
  const berthdArgs = ['--image-dir', images];
  const pool = new SleeperPool(48);
  const names = new Set<string>();
  let berthd: Berthd = await startBerthd(runtime, { args: berthdArgs, logLevel: 'warn', keepBytes: 4 << 20 });
  let crashes = 0;
  let hangs = 0;
  let running = true;
  const crashNotes: string[] = [];
  const errorLogs = new Map<string, number>();
  const collectLogs = (b: Berthd) => {
    for (const l of logLines(b.stderr())) {
      if (typeof l.level === 'number' && l.level >= 50) {
        const err = l.err as { type?: string; message?: string } | undefined;
        const key = `${l.msg}${err ? `: ${err.type}: ${err.message}` : ''}${l.method ? ` (${l.method})` : ''}`;
        errorLogs.set(key, (errorLogs.get(key) ?? 0) + 1);
      }
    }
  };
  const watchCrash = (b: Berthd) => {
    b.child.once('exit', (code, signal) => {
      if (!running) return;
      crashes++;
      crashNotes.push(`berthd exited (${signal ?? code}); last log: ${b.stderr().slice(-1500)}`);
      collectLogs(b);
      void startBerthd(runtime, { args: berthdArgs, logLevel: 'warn', keepBytes: 4 << 20 }).then((nb) => {
        berthd = nb;
        watchCrash(nb);
      });
    });
  };
  watchCrash(berthd);

  try {
    // The interfaces as berthd serves them, parsed with berth's own parser.
    const machineIfaces = await fetchInterfaces(machineSocket(runtime));
    const userdbIfaces = (await fetchInterfaces(userdbSocket(runtime))).filter((i) => i.name === 'io.systemd.UserDatabase');
    const parsed = (list: { name: string; text: string }[]) => list.map((i) => parseInterface(i.text, i.name));
    const methods = [...methodsOf(parsed(machineIfaces), 'machine'), ...methodsOf(parsed(userdbIfaces), 'userdb')];
    opts.log(`fuzz: seed ${seed}, ${methods.length} methods of ${machineIfaces.length + userdbIfaces.length} interfaces`);

    // IDL parser, in-process.
    const realTexts = [...machineIfaces, ...userdbIfaces].map((i) => i.text);
    const idl = fuzzIdl(realTexts, idlRuns, seed);
    if (idl.foreign) failures.push(`IDL parser threw something other than IdlError for ${idl.foreign} of ${idl.texts} texts`);
    if (idl.roundtrip) failures.push(`IDL: ${idl.roundtrip} accepted texts did not print and re-parse`);
    notes.push(...idl.examples);
    opts.log(`fuzz: idl ${idl.texts} texts, ${idl.accepted} accepted, ${idl.foreign} foreign exceptions`);

    const rssBefore = rssKiB(berthd.pid);

    // What each worker is sending right now (kind and size), for the hang notes.
    const inflight: string[] = [];

    // Watchdog.
    let watchdogRounds = 0;
    const watchdog = (async () => {
      let c: Awaited<ReturnType<typeof connect>> | undefined;
      while (running) {
        const t0 = Date.now();
        try {
          c ??= await connect(machineSocket(runtime), 1000);
          const r = await call(c, 'org.varlink.service.GetInfo', {}, 1000);
          if ('error' in r) {
            if (r.error === 'TimedOutError' || /TimedOut/.test(r.error)) {
              hangs++;
              const busy = inflight.filter((x) => x).join(', ');
              notes.push(`hang: GetInfo not answered within 1 s at ${new Date().toISOString()}; in flight: ${busy.slice(0, 600)}`);
            }
            c.close();
            c = undefined;
          }
          watchdogRounds++;
        } catch {
          c?.close();
          c = undefined;
        }
        const wait = 200 - (Date.now() - t0);
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      }
      c?.close();
    })();

    // Systematic wrong types first: every field of every method; the reply must name the field.
    const cases = wrongTypeCases(methods);
    let sent = 0;
    let misreported = 0;
    const misExamples: string[] = [];
    const counts: Record<string, number> = {};
    const ends: Record<string, number> = {};
    const workers = 24;
    const senders = {
      machine: Array.from({ length: workers }, (_, i) => new Sender(machineSocket(runtime), i)),
      userdb: Array.from({ length: workers }, (_, i) => new Sender(userdbSocket(runtime), 1000 + i)),
    };
    let caseIndex = 0;
    await Promise.all(
      Array.from({ length: workers }, async (_, w) => {
        while (caseIndex < cases.length) {
          const k = cases[caseIndex++]!;
          const params = sanitize(k.info.full, k.params, pool, names, caseIndex);
          const msg: Record<string, unknown> = { method: k.info.full, parameters: params };
          if (k.info.method.more === 'requires') msg.more = true;
          const r = await senders[k.info.socket][w]!.round(Buffer.from(JSON.stringify(msg)), 5000);
          sent++;
          counts.wrongtype = (counts.wrongtype ?? 0) + 1;
          ends[r.end] = (ends[r.end] ?? 0) + 1;
          const first = r.received.split('\0')[0] ?? '';
          let reply: { error?: string; parameters?: { parameter?: string } } = {};
          try {
            reply = JSON.parse(first);
          } catch {
            /* closed without a reply */
          }
          if (reply.error !== 'org.varlink.service.InvalidParameter' || reply.parameters?.parameter !== k.field) {
            misreported++;
            if (misExamples.length < 8) misExamples.push(`${k.info.full} ${JSON.stringify(params).slice(0, 200)} → ${first.slice(0, 200) || `(${r.end})`}`);
          }
        }
      }),
    );
    if (misreported) {
      failures.push(`${misreported} of ${cases.length} wrong-typed calls were not answered InvalidParameter naming the field`);
      notes.push(...misExamples.map((e) => `wrong type: ${e}`));
    }
    opts.log(`fuzz: ${cases.length} wrong-type calls, ${misreported} misreported`);

    // Generated stream.
    const mix = fc.oneof(
      { weight: 55, arbitrary: mutatedCallArb(methods) },
      { weight: 15, arbitrary: randomBytesArb() },
      { weight: 15, arbitrary: randomJsonArb(methods) },
      { weight: 4, arbitrary: nestedArb(methods) },
    );
    // One huge message at a time; in the short (CI) run at most 1 MiB, so a slow machine does not
    // turn the known cost of parsing 16 MiB into a flaky hang. The full run has its own stall check below.
    const hugeEvery = 4000;
    const huge = hugeArb(methods, opts.short ? 1 << 20 : (16 << 20) + 100);
    const started = Date.now();
    const msByKind: Record<string, number> = {};
    const recent: string[] = [];
    const suspects: string[] = [];
    const onErr = (d: Buffer) => {
      if (d.includes('"level":50') && suspects.length < 3) suspects.push(`error logged while one of these was in flight: ${recent.join(' | ').slice(0, 3000)}`);
    };
    berthd.child.stderr!.on('data', onErr);
    let batchNo = 0;
    let queue: FuzzMessage[] = [];
    const next = (): FuzzMessage | undefined => {
      if (sent >= target || Date.now() - started > budget) return undefined;
      if (queue.length === 0) {
        queue = fc.sample(mix, { numRuns: 500, seed: seed + 7919 * ++batchNo });
        if (batchNo % Math.max(1, Math.floor(hugeEvery / 500)) === 0) queue.push(...fc.sample(huge, { numRuns: 1, seed: seed + batchNo }));
      }
      sent++;
      return queue.pop();
    };
    let lastLog = Date.now();
    await Promise.all(
      Array.from({ length: workers }, async (_, w) => {
        for (let m = next(); m; m = next()) {
          let data = m.data;
          if (m.kind === 'mutated' || m.kind === 'json') {
            try {
              const o = JSON.parse(data.toString()) as Record<string, unknown>;
              if (o && typeof o === 'object' && o.parameters && typeof o.parameters === 'object' && !Array.isArray(o.parameters)) {
                o.parameters = sanitize(typeof o.method === 'string' ? o.method : undefined, o.parameters as Record<string, unknown>, pool, names, sent);
                data = Buffer.from(JSON.stringify(o));
              } else if (o && typeof o === 'object' && typeof o.method === "string" && /\.Register(ReplacingDead)?$/.test(o.method)) {
                // No parameters: berthd would take this process as the leader. Send it without the method.
                data = Buffer.from(JSON.stringify({ ...o, method: 'io.systemd.Machine.List' }));
              }
            } catch {
              /* not JSON: leave as is */
            }
          }
          counts[m.kind] = (counts[m.kind] ?? 0) + 1;
          recent.push(data.length > 400 ? data.subarray(0, 400).toString('latin1') + '…' : data.toString('latin1'));
          if (recent.length > workers) recent.shift();
          const t0 = Date.now();
          inflight[w] = `${m.kind}/${data.length}B${m.method ? `/${m.method}` : ''}`;
          const r = await senders[m.socket][w]!.round(data, m.kind === 'huge' || m.kind === 'nested' ? 20_000 : 1000);
          inflight[w] = '';
          msByKind[m.kind] = (msByKind[m.kind] ?? 0) + Date.now() - t0;
          ends[r.end] = (ends[r.end] ?? 0) + 1;
          if (r.end === 'timeout') {
            if ((counts.timeoutNotes ?? 0) < 5) notes.push(`no sentinel reply within the round timeout after a ${m.kind} message: ${data.toString('latin1').slice(0, 160)}`);
            counts.timeoutNotes = (counts.timeoutNotes ?? 0) + 1;
          }
          if (Date.now() - lastLog > 10_000) {
            lastLog = Date.now();
            opts.log(`fuzz: ${sent} sent, ${crashes} crashes, ${hangs} hangs, RSS ${mib(rssKiB(berthd.pid))} MiB`);
          }
        }
      }),
    );
    for (const s of [...senders.machine, ...senders.userdb]) s.drop();

    // Full run: several clients at once, each with one message just under the 16 MiB limit (an
    // 8M-element array in ifIndices). Such messages are parsed and validated in berthd's parse worker
    // and, being valid, parsed once more on the event loop for the handler; this measures how long
    // everyone else waits meanwhile (over 1 s counts as a hang) and the memory it takes at the peak.
    let stallMs = -1;
    let rssPeak = 0;
    const rssAfterStream = rssKiB(berthd.pid);
    if (!opts.short) {
      const value = '[' + '1,'.repeat(8_388_000) + '1]';
      const big = Buffer.from(`{"method":"io.systemd.Machine.Register","parameters":{"ifIndices":${value}}}`);
      const probe = await connect(machineSocket(runtime));
      const bigSenders = Array.from({ length: 4 }, (_, i) => new Sender(machineSocket(runtime), 5000 + i));
      const sending = Promise.all(bigSenders.map((s) => s.round(big, 60_000)));
      stallMs = 0;
      let done = false;
      void sending.then(() => (done = true));
      while (!done) {
        const t0 = Date.now();
        const r = await call(probe, 'org.varlink.service.GetInfo', {}, 30_000);
        stallMs = Math.max(stallMs, Date.now() - t0);
        rssPeak = Math.max(rssPeak, rssKiB(berthd.pid));
        if ('error' in r) break;
      }
      await sending;
      for (const s of bigSenders) s.drop();
      probe.close();
      sent += 4;
      counts.huge = (counts.huge ?? 0) + 4;
      if (stallMs > 1000) {
        hangs++;
        notes.push(
          `hang: 4 clients each sending one ${(big.length / 1048576).toFixed(1)} MiB Register (ifIndices of 8,388,001 ints) kept GetInfo waiting ${stallMs} ms ` +
            '(the parse worker should have kept the event loop free)',
        );
      }
    }
    // Let berthd settle: one answered GetInfo after every connection is gone.
    const settle = await connect(machineSocket(runtime));
    await call(settle, 'org.varlink.service.GetInfo');
    settle.close();
    const rssAfter = rssKiB(berthd.pid);
    // The parse worker exits after 5 idle seconds and its heap goes with it, and V8 shrinks the main
    // heap some seconds after the large calls are gone: memory at rest.
    await new Promise((r) => setTimeout(r, opts.short ? 6500 : 15_000));
    const rssRest = rssKiB(berthd.pid);
    running = false;
    await watchdog;
    collectLogs(berthd);

    // Whatever the fuzz registered goes, with its scopes.
    const machinesLeft = await (async () => {
      const c = await connect(machineSocket(runtime));
      try {
        return (await listAll(c)).length - 1;
      } finally {
        c.close();
      }
    })().catch(() => -1);

    if (crashes) failures.push(`berthd crashed ${crashes} time(s)`);
    if (hangs) failures.push(`${hangs} watchdog GetInfo calls were not answered within 1 s`);
    notes.push(...crashNotes);
    let errorLines = 0;
    for (const [k, n] of errorLogs) {
      errorLines += n;
      notes.push(`berthd error log ×${n}: ${k.slice(0, 300)}`);
    }
    notes.push(...suspects);
    if (errorLines) failures.push(`berthd logged ${errorLines} error-level lines (handler failures or swallowed exceptions)`);
    const total = Object.entries(counts).filter(([k]) => k !== 'timeoutNotes').reduce((a, [, n]) => a + n, 0);
    return {
      name,
      figures: {
        sent: total,
        crashes,
        hangs,
        'rss-before-MiB': mib(rssBefore),
        'rss-after-stream-MiB': mib(rssAfterStream),
        ...(rssPeak ? { 'rss-peak-4x16MiB-MiB': mib(rssPeak) } : {}),
        'rss-after-MiB': mib(rssAfter),
        'rss-rest-MiB': mib(rssRest),
        'growth-MiB': mib(rssRest - rssBefore),
        'idl-texts': idl.texts,
        'idl-non-IdlError': idl.foreign,
        'wrongtype-misreported': misreported,
        'error-logs': errorLines,
        'machines-left': machinesLeft,
        seed,
        mix: Object.entries(counts)
          .filter(([k]) => k !== 'timeoutNotes')
          .map(([k, n]) => `${k}:${n}`)
          .join(','),
        ends: Object.entries(ends)
          .map(([k, n]) => `${k}:${n}`)
          .join(','),
        'watchdog-calls': watchdogRounds,
        'stall-4x16MiB-ms': stallMs,
        'ms-by-kind': Object.entries(msByKind)
          .map(([k, n]) => `${k}:${n}`)
          .join(','),
      },
      failures,
      notes,
    };
  } finally {
    running = false;
    pool.stop();
    await berthd.stop();
    for (const n of names) if (n && !n.includes('/')) removeScopes(n, true);
    rmrf(runtime);
  }
}
