/**
 * The launcher (optional): a busybox container started with berth-spawn, from spawn to READY=1 and from
 * SIGTERM to the end of berth-spawn (clean stop and cleanup). Runs only when dist/src/client/berth-spawn.js
 * and the busybox rootfs of scripts/rootfs.sh exist; the rootfs is copied, never used in place.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import readline from 'node:readline';
import { execa } from 'execa';
import type { BenchContext } from '../lib/context.js';
import { hierarchies } from '../lib/leaders.js';
import { LEADERS } from '../lib/loadgen.js';
import { millis } from '../lib/report.js';
import { DIST, errorText, median, tempDir } from '../lib/util.js';

export const LAUNCHER_SCENARIOS = ['launcher.spawn-ready', 'launcher.stop'];

const SPAWN = path.join(DIST, 'src/client/berth-spawn.js');
const CACHE = process.env.BERTH_CACHE ?? '/var/tmp/berth-cache';
const ROOTFS = path.join(CACHE, 'busybox/rootfs');

export async function launcherScenarios(ctx: BenchContext): Promise<void> {
  if (!ctx.anySelected(LAUNCHER_SCENARIOS)) return;
  const r = ctx.report;
  const skipAll = (why: string) => LAUNCHER_SCENARIOS.filter((n) => ctx.selected(n)).forEach((n) => r.skip(n, why));
  if (!fs.existsSync(SPAWN)) return skipAll(`${path.relative(process.cwd(), SPAWN)} does not exist`);
  if (!fs.existsSync(path.join(ROOTFS, 'init'))) return skipAll(`no busybox rootfs at ${ROOTFS} (bash scripts/rootfs.sh busybox)`);

  const work = tempDir('bn-launcher-');
  fs.chmodSync(work, 0o755); // the container's root must reach the runtime directory inside it
  const notifier = spawnNotifier(path.join(work, 'notify'));
  try {
    const root = path.join(work, 'rootfs');
    await execa('cp', ['-a', ROOTFS, root]);
    const runtime = path.join(work, 'run');
    fs.mkdirSync(runtime);
    await notifier.ready;
    const n = ctx.quick ? 3 : 10;
    const ready: number[] = [];
    const stop: number[] = [];
    const via = new Set<string>();
    const leftover: string[] = [];
    for (let i = 0; i < n; i++) {
      const t = await oneContainer({ root, runtime, name: `bn-${ctx.run}-c${i}`, notifier });
      ready.push(t.readyMs);
      stop.push(t.stopMs);
      via.add(t.via);
      leftover.push(...t.leftover);
    }
    for (const d of leftover) fs.rmdirSync(d, { recursive: false });
    const note = (v: number[]) => `p50 of ${n}; min ${millis(Math.min(...v))}, max ${millis(Math.max(...v))}`;
    if (ctx.selected('launcher.spawn-ready')) {
      r.absolute('launcher.spawn-ready', { berth: median(ready), format: millis, target: 200, atMost: true, unitText: '200 ms p50', note: `${note(ready)}; from starting node berth-spawn.js; READY seen as ${[...via].join(', ')}` });
    }
    if (ctx.selected('launcher.stop')) {
      r.absolute('launcher.stop', { berth: median(stop), format: millis, target: 300, atMost: true, unitText: '300 ms p50', note: `SIGTERM → berth-spawn exited; ${note(stop)}${leftover.length ? `; scope cgroups left behind: ${leftover.length}` : ''}` });
    }
  } catch (e) {
    for (const n of LAUNCHER_SCENARIOS) if (ctx.selected(n)) r.fail(n, errorText(e));
  } finally {
    notifier.child.kill('SIGTERM');
    fs.rmSync(work, { recursive: true, force: true });
  }
}

interface Notifier {
  child: ChildProcess;
  ready: Promise<void>;
  path: string;
  /** Resolves on the next message containing READY=1. */
  nextReady(): Promise<void>;
}

/** An AF_UNIX datagram receiver (Node has none) for READY=1 forwarded by berth-spawn to $NOTIFY_SOCKET. */
function spawnNotifier(socketPath: string): Notifier {
  const child = spawn(LEADERS, ['notify', socketPath], { stdio: ['ignore', 'pipe', 'inherit'] });
  let waiting: (() => void) | undefined;
  let markReady!: () => void;
  const ready = new Promise<void>((r) => (markReady = r));
  readline.createInterface({ input: child.stdout! }).on('line', (line) => {
    if (line === 'ready') return markReady();
    if (/\bREADY=1\b/.test(line)) {
      const w = waiting;
      waiting = undefined;
      w?.();
    }
  });
  return { child, ready, path: socketPath, nextReady: () => new Promise<void>((r) => (waiting = r)) };
}

/**
 * berth-spawn -D ROOT -M NAME -U --notify-ready=yes --register=no /init. READY is the first of: READY=1
 * forwarded to our $NOTIFY_SOCKET, or berth-spawn's "is running" message (printed after READY=1 when it
 * waits for it). Then SIGTERM, timed until berth-spawn exits.
 */
async function oneContainer(
  o: { root: string; runtime: string; name: string; notifier: Notifier },
): Promise<{ readyMs: number; stopMs: number; via: string; leftover: string[] }> {
  const t0 = performance.now();
  const child = spawn(
    process.execPath,
    [SPAWN, '-D', o.root, '-M', o.name, '-U', '--notify-ready=yes', '--register=no', `--runtime-dir=${o.runtime}`, '/init'],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NOTIFY_SOCKET: o.notifier.path } },
  );
  let stderr = '';
  const exited = new Promise<number | string>((r) => child.once('exit', (code, sig) => r(code ?? sig ?? '?')));
  try {
    let via = '';
    const readyMs = await new Promise<number>((resolve, reject) => {
      const done = (how: string) => {
        via ||= how;
        resolve(performance.now() - t0);
      };
      const timer = setTimeout(() => reject(new Error(`no READY within 10 s: ${stderr.trim().split('\n').slice(-3).join(' | ')}`)), 10_000);
      void o.notifier.nextReady().then(() => {
        clearTimeout(timer);
        done('READY=1 forwarded to $NOTIFY_SOCKET');
      });
      child.stderr!.on('data', (d: Buffer) => {
        stderr += d.toString();
        if (/ is running/.test(stderr)) {
          clearTimeout(timer);
          done('"is running" on stderr');
        }
      });
      void exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`berth-spawn exited (${code}) before READY: ${stderr.trim().split('\n').slice(-3).join(' | ')}`));
      });
    });
    const t1 = performance.now();
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    const code = await exited;
    clearTimeout(timer);
    const stopMs = performance.now() - t1;
    if (code !== 0) throw new Error(`berth-spawn exited with ${code} after SIGTERM: ${stderr.trim().split('\n').slice(-2).join(' | ')}`);
    // What berth-spawn should have removed by the time it exits.
    const leftover = hierarchies()
      .map((h) => path.join(h, 'machine.slice', `machine-${o.name}.scope`))
      .filter((d) => fs.existsSync(d));
    return { readyMs, stopMs, via, leftover };
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  }
}
