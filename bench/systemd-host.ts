/**
 * The systemd-host bench (issue 11's numbers): boots the Debian machine with systemd as PID 1
 * (bench/lib/booted-machine.ts), measures that machine's own systemd-machined, installs berth with
 * `berthctl install`, measures berth the same way, uninstalls, and prints one row per figure with the target.
 * Targets are reported, never asserted.
 *
 *   node dist/bench/systemd-host.js [--cycles N] [--samples N]
 */
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { bootMachine, cannotBoot, checkout, systemdHostTree, type Booted } from './lib/booted-machine.js';

const { values } = parseArgs({ options: { cycles: { type: 'string' }, samples: { type: 'string' } } });
const cycles = Number(values.cycles ?? 100);
const samples = Number(values.samples ?? 15);

async function measure(m: Booted, what: string, n: number): Promise<Record<string, number>> {
  const r = await m.sh(`node dist/bench/systemd-host-inner.js ${what} ${n}`);
  if (r.exitCode !== 0) throw new Error(`${what}: ${r.stderr.trim()}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Record<string, number>;
}

async function main(): Promise<number> {
  const why = cannotBoot();
  if (why) {
    process.stderr.write(`systemd-host bench: cannot run: ${why}\n`);
    return 1;
  }
  const work = fs.mkdtempSync('/var/tmp/berth-syshost-bench-');
  fs.chmodSync(work, 0o755);
  let m: Booted | undefined;
  try {
    m = await bootMachine(await systemdHostTree(), work, `syshost-bench-${process.pid}`);
    const machined = await measure(m, 'register', cycles);
    const inst = await m.sh('node dist/bin/berthctl.mjs install');
    if (inst.exitCode !== 0) throw new Error(`install: ${inst.stderr.trim()}`);
    const berth = await measure(m, 'register', cycles);
    const first = await measure(m, 'first-call', samples);
    await m.sh('berthctl uninstall');
    const ratio = berth.perSecond! / machined.perSecond!;
    const row = (name: string, b: string, d: string, r: string, target: string, pass: boolean): string =>
      `${name.padEnd(34)} ${b.padStart(12)} ${d.padStart(12)} ${r.padStart(7)}  ${target.padEnd(14)} ${pass ? 'PASS' : 'MISS'}`;
    process.stdout.write(`${'scenario'.padEnd(34)} ${'berth'.padStart(12)} ${'machined'.padStart(12)} ${'ratio'.padStart(7)}  target\n`);
    process.stdout.write(row('systemd-host.register-dbus', `${berth.perSecond!.toFixed(1)}/s`, `${machined.perSecond!.toFixed(1)}/s`,
      `${ratio.toFixed(2)}x`, '>= 1.0x', ratio >= 1) + '\n');
    process.stdout.write(row('systemd-host.first-call-activated', `${first.p50!.toFixed(0)} ms`, '-', '-', 'p50 <= 120 ms', first.p50! <= 120) + '\n');
    const f = first as Record<string, number | null>;
    const ms = (x: number | null | undefined): string => (typeof x === 'number' ? `${x.toFixed(0)} ms` : '?');
    process.stdout.write(`first call, medians: systemd from the connection to forking berthd ${ms(f.systemdToFork)}, berthd from fork to ready ` +
      `${ms(f.forkToReady)} (node -e 0 takes ${ms(f.nodeStart)}, node loading berthd's bundle ${ms(f.nodeWithBundle)}), ready to the reply ${ms(f.readyToReply)}\n`);
    process.stdout.write(`(${cycles} CreateMachine+TerminateMachine cycles each, systemd making the scope; ${samples} first calls after systemctl stop berthd; checkout ${checkout})\n`);
    return 0;
  } catch (e) {
    process.stderr.write(`systemd-host bench: FAIL: ${(e as Error).message}\n`);
    return 1;
  } finally {
    await m?.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

process.exit(await main());
