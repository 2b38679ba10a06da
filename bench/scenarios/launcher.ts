/**
 * The launcher (optional, last), through berth-spawn as a user runs it: a busybox container and a Debian
 * systemd container from spawn to READY=1 and from SIGTERM to the end of berth-spawn (clean stop and
 * cleanup), and a TCG VM to READY=1 through src/launcher/vm/measure.js. Each part runs only when its
 * pieces exist (dist/src/client/berth-spawn.js, the trees and kernel of scripts/rootfs.sh) and says why
 * not otherwise; trees are copied (berth-spawn -U shifts their ownership), never used in place.
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

const BUSYBOX_SCENARIOS = ['launcher.spawn-ready', 'launcher.stop'];
const SYSTEMD_SCENARIOS = ['launcher.systemd-ready', 'launcher.systemd-stop'];
const VM_SCENARIOS = ['launcher.vm-ready'];
export const LAUNCHER_SCENARIOS = [...BUSYBOX_SCENARIOS, ...SYSTEMD_SCENARIOS, ...VM_SCENARIOS];

// The bundle, as berthd's launch service runs it (scripts/bundle.mjs).
const SPAWN = path.join(DIST, 'bin/berth-spawn.mjs');
const VM_MEASURE = path.join(DIST, 'src/launcher/vm/measure.js');
const CACHE = process.env.BERTH_CACHE ?? '/var/tmp/berth-cache';
const BUSYBOX = path.join(CACHE, 'busybox/rootfs');
const DEBIAN = path.join(CACHE, 'debian/rootfs');
const VM = path.join(CACHE, 'vm');

export async function launcherScenarios(ctx: BenchContext): Promise<void> {
  if (!ctx.anySelected(LAUNCHER_SCENARIOS)) return;
  const r = ctx.report;
  const skip = (names: string[], why: string) => names.filter((n) => ctx.selected(n)).forEach((n) => r.skip(n, why));
  const fail = (names: string[], e: unknown) => names.filter((n) => ctx.selected(n)).forEach((n) => r.fail(n, errorText(e)));
  const spawnMissing = fs.existsSync(SPAWN) ? undefined : `${path.relative(process.cwd(), SPAWN)} does not exist`;

  // /var/tmp, as the launcher tests use: creating files in /tmp is far slower on some hosts.
  const work = tempDir('bn-launcher-', '/var/tmp');
  fs.chmodSync(work, 0o755); // the container's root must reach the runtime directory inside it
  const runtime = path.join(work, 'run');
  fs.mkdirSync(runtime, { mode: 0o755 });
  const notifier = spawnNotifier(path.join(work, 'notify'));
  try {
    await notifier.ready;
    if (ctx.anySelected(BUSYBOX_SCENARIOS)) {
      if (spawnMissing) skip(BUSYBOX_SCENARIOS, spawnMissing);
      else if (!fs.existsSync(path.join(BUSYBOX, 'init'))) skip(BUSYBOX_SCENARIOS, `no busybox tree at ${BUSYBOX} (bash scripts/rootfs.sh busybox)`);
      else {
        try {
          const root = path.join(work, 'busybox');
          await execa('cp', ['-a', BUSYBOX, root]);
          const runs = await containers(ctx, { root, runtime, notifier, tag: 'c', n: ctx.quick ? 3 : 10, warm: 0, args: ['/init'] });
          report(ctx, runs, 'launcher.spawn-ready', 200, 'launcher.stop', 300);
        } catch (e) {
          fail(BUSYBOX_SCENARIOS, e);
        }
      }
    }
    if (ctx.anySelected(SYSTEMD_SCENARIOS)) {
      if (spawnMissing) skip(SYSTEMD_SCENARIOS, spawnMissing);
      else if (!fs.existsSync(path.join(CACHE, 'debian/.complete'))) skip(SYSTEMD_SCENARIOS, `no Debian tree at ${DEBIAN} (bash scripts/rootfs.sh debian)`);
      else {
        try {
          const root = path.join(work, 'debian');
          await execa('cp', ['-a', '--reflink=auto', DEBIAN, root]);
          // The first start shifts the tree's ownership into the picked range: not counted.
          const runs = await containers(ctx, { root, runtime, notifier, tag: 'd', n: ctx.quick ? 1 : 3, warm: 1, args: ['-b'], readyTimeoutMs: 30_000 });
          report(ctx, runs, 'launcher.systemd-ready', 600, 'launcher.systemd-stop', 300);
        } catch (e) {
          fail(SYSTEMD_SCENARIOS, e);
        }
      }
    }
    if (ctx.anySelected(VM_SCENARIOS)) await vm(ctx);
  } finally {
    notifier.child.kill('SIGTERM');
    fs.rmSync(work, { recursive: true, force: true });
  }
}

interface Runs {
  ready: number[];
  stop: number[];
  via: Set<string>;
  leftover: string[];
}

async function containers(
  ctx: BenchContext,
  o: { root: string; runtime: string; notifier: Notifier; tag: string; n: number; warm: number; args: string[]; readyTimeoutMs?: number },
): Promise<Runs> {
  const runs: Runs = { ready: [], stop: [], via: new Set(), leftover: [] };
  for (let i = 0; i < o.warm + o.n; i++) {
    const t = await oneContainer({ ...o, name: `bn-${ctx.run}-${o.tag}${i}`, readyTimeoutMs: o.readyTimeoutMs ?? 10_000 });
    runs.leftover.push(...t.leftover);
    for (const d of t.leftover) fs.rmdirSync(d);
    if (i < o.warm) continue;
    runs.ready.push(t.readyMs);
    runs.stop.push(t.stopMs);
    runs.via.add(t.via);
  }
  return runs;
}

function report(ctx: BenchContext, runs: Runs, readyName: string, readyTarget: number, stopName: string, stopTarget: number): void {
  const n = runs.ready.length;
  const note = (v: number[]) => (n > 1 ? `p50 of ${n}; min ${millis(Math.min(...v))}, max ${millis(Math.max(...v))}` : '1 run');
  if (ctx.selected(readyName)) {
    ctx.report.absolute(readyName, {
      berth: median(runs.ready),
      format: millis,
      target: readyTarget,
      atMost: true,
      unitText: `${readyTarget} ms p50`,
      note: `${note(runs.ready)}; from starting node berth-spawn.js; READY seen as ${[...runs.via].join(', ')}`,
    });
  }
  if (ctx.selected(stopName)) {
    ctx.report.absolute(stopName, {
      berth: median(runs.stop),
      format: millis,
      target: stopTarget,
      atMost: true,
      unitText: `${stopTarget} ms p50`,
      note: `SIGTERM → berth-spawn exited; ${note(runs.stop)}${runs.leftover.length ? `; scope cgroups left behind: ${runs.leftover.length}` : ''}`,
    });
  }
}

interface VmSample {
  readyMs: number;
  totalMs: number;
  stopMs: number;
  accel: string;
}

/** TCG VM to READY=1 with the kernel and initramfs of scripts/rootfs.sh vm, through the launcher's own measure. */
async function vm(ctx: BenchContext): Promise<void> {
  const name = 'launcher.vm-ready';
  if (!ctx.selected(name)) return;
  const kernel = ['vmlinux', 'vmlinuz'].map((k) => path.join(VM, k)).find((k) => fs.existsSync(k));
  const initrd = path.join(VM, 'initrd.cpio.gz');
  if (!fs.existsSync(VM_MEASURE)) return ctx.report.skip(name, `${path.relative(process.cwd(), VM_MEASURE)} does not exist`);
  if (!kernel || !fs.existsSync(initrd)) return ctx.report.skip(name, `no kernel and initramfs in ${VM} (bash scripts/rootfs.sh vm)`);
  try {
    const mod = (await import(VM_MEASURE)) as {
      measureVmReady(p: { kernel: string; initrd: string; runs: number }): Promise<VmSample[]>;
    };
    const samples = await mod.measureVmReady({ kernel, initrd, runs: ctx.quick ? 1 : 3 });
    const total = samples.map((s) => s.totalMs);
    ctx.report.absolute(name, {
      berth: median(total),
      format: (ms) => `${(ms / 1000).toFixed(2)} s`,
      target: 6000,
      atMost: true,
      unitText: '6 s p50',
      note: `${samples.length} run(s) of ${path.basename(kernel)}; qemu start → READY ${millis(median(samples.map((s) => s.readyMs)))}; stop ${millis(median(samples.map((s) => s.stopMs)))}; ${(samples[0]?.accel ?? '').split(':')[0]}`.trim(),
    });
  } catch (e) {
    ctx.report.fail(name, errorText(e));
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
async function oneContainer(o: {
  root: string;
  runtime: string;
  name: string;
  notifier: Notifier;
  args: string[];
  readyTimeoutMs: number;
}): Promise<{ readyMs: number; stopMs: number; via: string; leftover: string[] }> {
  const t0 = performance.now();
  const child = spawn(
    process.execPath,
    [SPAWN, '-D', o.root, '-M', o.name, '-U', '--notify-ready=yes', '--register=no', `--runtime-dir=${o.runtime}`, ...o.args],
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
      const timer = setTimeout(
        () => reject(new Error(`no READY within ${o.readyTimeoutMs / 1000} s: ${stderr.trim().split('\n').slice(-3).join(' | ')}`)),
        o.readyTimeoutMs,
      );
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
