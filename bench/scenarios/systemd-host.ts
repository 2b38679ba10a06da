/**
 * Issue 11's figures, taken inside a machine with systemd as PID 1 (the project's Debian 12 tree booted by
 * berth-spawn, bench/lib/booted-machine.ts): registering with a scope that systemd makes, and the first
 * call of a berthd that systemd starts through its socket.
 *
 * Three services are measured there in alternating rounds: the machine's own systemd-machined 252, the
 * reference systemd-machined 257 (its tree bind-mounted in, started with 252's units masked for the
 * round), and berth installed with `berthctl install` (and removed again after each round, which also
 * puts 252 back). 252 answers CreateMachine but has no Varlink Register (that came with 256), so the
 * Varlink row compares with 257 only. bench/systemd-host-inner.ts does the measuring inside.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { BenchContext } from '../lib/context.js';
import { execa } from 'execa';
import { bootMachine, cannotBoot, checkout, systemdHostTree, type Booted } from '../lib/booted-machine.js';
import { millis, rate } from '../lib/report.js';
import { errorText, median } from '../lib/util.js';

export const SYSTEMD_HOST_SCENARIOS = ['systemd-host.register-dbus', 'systemd-host.register-varlink', 'systemd-host.first-call'];

/** reference-tools.sh inside the machine for the install at `root` (bound read-only there), its state kept apart. */
const referenceTools = (root: string) => `BERTH_REFERENCE_ROOT=${root} BERTH_REFERENCE_STATE=/var/tmp/berth-ref257-state bash scripts/reference-tools.sh`;
const MACHINED_UNITS = 'systemd-machined.service systemd-machined.socket';

async function inner(m: Booted, what: string, n: number, prefix = '', warmup = 1): Promise<Record<string, number | null>> {
  const r = await m.sh(`node dist/bench/systemd-host-inner.js ${what} ${n} '${prefix}' ${warmup}`);
  if (r.exitCode !== 0) throw new Error(`${what} ${prefix}: ${r.stderr.split('\n').filter((l) => /error|Error|errno/.test(l)).slice(0, 3).join(' / ') || r.stderr.trim().slice(-300)}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Record<string, number | null>;
}

async function must(m: Booted, line: string): Promise<void> {
  const r = await m.sh(line);
  if (r.exitCode !== 0) throw new Error(`${line}: ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' / ')}`);
}

export async function systemdHostScenarios(ctx: BenchContext): Promise<void> {
  if (!ctx.anySelected(SYSTEMD_HOST_SCENARIOS)) return;
  const r = ctx.report;
  const why = cannotBoot();
  if (why) {
    for (const n of SYSTEMD_HOST_SCENARIOS) if (ctx.selected(n)) r.skip(n, `cannot boot a systemd machine here: ${why}`);
    return;
  }
  const work = fs.mkdtempSync('/var/tmp/berth-syshost-bench-');
  fs.chmodSync(work, 0o755);
  let m: Booted | undefined;
  try {
    // The 257 install (scripts/reference-tools.sh path names its tree; the root is the folder above).
    const tree = (await execa('bash', [path.join(checkout, 'scripts/reference-tools.sh'), 'path'])).stdout.trim();
    const root = path.dirname(tree);
    const with257 = fs.existsSync(path.join(tree, 'usr/lib/systemd/systemd-machined'));
    m = await bootMachine(await systemdHostTree(), work, `syshost-bench-${process.pid}`, with257 ? [`${root}:${root}`] : []);
    await measure(ctx, m, with257 ? { ref: referenceTools(root) } : { no257: `${tree} is missing (scripts/reference-tools.sh install)` });
  } catch (e) {
    for (const n of SYSTEMD_HOST_SCENARIOS) if (ctx.selected(n) && !r.rows.some((row) => row.scenario === n)) r.fail(n, errorText(e));
  } finally {
    await m?.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/** `ref`: how to run reference-tools.sh inside for 257; else `no257`, why 257 is not measured. */
async function measure(ctx: BenchContext, m: Booted, { ref, no257 }: { ref?: string; no257?: string }): Promise<void> {
  const with257 = ref !== undefined;
  const n = ctx.quick ? 40 : 150;
  // Every service gets the same untimed cycles first, as every other bench row has its warm-up: berthd (started
  // afresh each round) runs its first few hundred calls while V8 is still compiling them. Its rate in those is
  // reported in the row's note.
  const warmup = ctx.quick ? 60 : 300;
  const rounds = ctx.rounds;
  const fig = { m252: [] as number[], m257: [] as number[], m257v: [] as number[], berth: [] as number[], berthV: [] as number[] };
  /** Each server's mean ms per step in its last round: spawn/register/terminate/exit. */
  const steps: Record<string, string> = {};
  /** Each server's rate in its warm-up cycles, per round, and how often 257's Varlink Terminate had to be asked again. */
  const cold: Record<string, number[]> = {};
  let retried = 0;
  const keep = (label: string, r: Record<string, number | null>): number => {
    const f = (k: string) => (r[k] ?? NaN).toFixed(2);
    steps[label] = `${f('registerMs')}/${f('terminateMs')}/${f('exitMs')}`;
    (cold[label] ??= []).push(r.warmupPerSecond ?? NaN);
    retried += r.terminateRetries ?? 0;
    return r.perSecond!;
  };
  const run = (what: string, prefix: string) => inner(m, what, n, prefix, warmup);
  let first: Record<string, number | null> | undefined;
  const failed257: string[] = [];
  for (let round = 0; round < rounds; round++) {
    fig.m252.push(keep('252 dbus', await run('register', `m252d${round}`)));
    if (with257) {
      await must(m, `systemctl stop systemd-machined.service && systemctl mask --runtime ${MACHINED_UNITS} && ${ref} machined start`);
      try {
        // machined 257 next to systemd 252 now and then fails a Register with EDEADLK (a scope job that systemd
        // refuses): such a round is left out of 257's figures and named in the row.
        for (const [what, into, tag] of [['register', fig.m257, 'd'], ['register-varlink', fig.m257v, 'v']] as const) {
          try {
            into.push(keep(`257 ${tag === 'd' ? 'dbus' : 'varlink'}`, await run(what, `m257${tag}${round}`)));
          } catch (e) {
            failed257.push(`round ${round + 1} ${what}: ${errorText(e).slice(0, 120)}`);
          }
        }
      } finally {
        await must(m, `${ref} machined stop; systemctl unmask --runtime ${MACHINED_UNITS}`);
      }
    }
    await must(m, 'node dist/bin/berthctl.mjs install');
    try {
      fig.berth.push(keep('berth dbus', await run('register', `bd${round}`)));
      fig.berthV.push(keep('berth varlink', await run('register-varlink', `bv${round}`)));
      if (round === rounds - 1 && ctx.selected('systemd-host.first-call')) first = await inner(m, 'first-call', ctx.quick ? 7 : 15);
    } finally {
      await must(m, 'berthctl uninstall');
    }
  }
  const r = ctx.report;
  const per = (xs: number[]) => (xs.length ? median(xs) : undefined);
  const perSecond = (v: number) => rate(v, 'cycles/s');
  const what = `${n} cycles per round after ${warmup} untimed, a new leader each, systemd making the scope; median of ${rounds} rounds` +
    (failed257.length ? `; 257 failed ${failed257.join('; ')}` : '');
  const stepsOf = (kind: string) => Object.entries(steps).filter(([l]) => l.endsWith(kind)).map(([l, v]) => `${l.split(' ')[0]} ${v}`).join(', ');
  const coldOf = (kind: string) => Object.entries(cold).filter(([l]) => l.endsWith(kind)).map(([l, v]) => `${l.split(' ')[0]} ${median(v).toFixed(0)}`).join(', ');
  const stepNote = (kind: string) => `; ms per register/terminate/exit: ${stepsOf(kind)}; cycles/s in the warm-up: ${coldOf(kind)}` +
    (kind === 'varlink' && retried ? `; 257's Terminate asked again ${retried}× (EDEADLK: its Register answers before the scope's start job ran)` : '');
  if (ctx.selected('systemd-host.register-dbus')) {
    const b = per(fig.berth)!;
    const m252 = per(fig.m252)!;
    r.versus('systemd-host.register-dbus', b, { '257': per(fig.m257), '252': m252 }, 1.0,
      `CreateMachine + TerminateMachine in the booted machine; its own machined 252: ${perSecond(m252)} (${(b / m252).toFixed(2)}×)` +
      `${with257 ? '' : `; 257 not measured: ${no257}`}; ${what}${stepNote('dbus')}`, perSecond);
  }
  if (ctx.selected('systemd-host.register-varlink')) {
    if (!with257) r.skip('systemd-host.register-varlink', `machined 252 has no Varlink Register, and the reference 257 is not there: ${no257}`);
    else {
      r.versus('systemd-host.register-varlink', per(fig.berthV)!, { '257': per(fig.m257v) }, 1.0,
        `Register (allocateUnit) + Terminate in the booted machine; 252 has no Varlink Register; ${what}${stepNote('varlink')}`, perSecond);
    }
  }
  if (first) {
    const ms = (x: number | null | undefined): string => (typeof x === 'number' ? `${x.toFixed(0)} ms` : '?');
    r.absolute('systemd-host.first-call', {
      berth: first.p50!, format: millis, target: 120, atMost: true,
      note: `p50 of ${first.samples} Pings after systemctl stop berthd, through systemd's socket (max ${ms(first.max)}); systemd to fork ` +
        `${ms(first.systemdToFork)}, fork to ready ${ms(first.forkToReady)} (node -e 0: ${ms(first.nodeStart)}, node + bundle: ` +
        `${ms(first.nodeWithBundle)}), ready to reply ${ms(first.readyToReply)}`,
    });
  }
}
