#!/usr/bin/env node
/**
 * npm run soak: berth's reliability and security suite. One line of figures per scenario on
 * stdout; progress on stderr; notes (reproductions of what failed) after the summary.
 *
 *   node dist/bench/soak.js [--short] [--only NAME[,NAME…]] [--seed N] [--json]
 *
 * Scenarios: fuzz, kill9, state-damage, flood, permissions, pid-reuse, long-run, and over D-Bus through a
 * real dbus-daemon dbus-fuzz (fuzzed bodies) and dbus-permissions (the permission matrix).
 * --short keeps each scenario at or under 60 s (the CI length). The exit code is 1 when any
 * scenario failed, 0 otherwise; a scenario that cannot run here says why and counts as skipped.
 */
import { parseArgs } from 'node:util';
import type { ScenarioOptions, ScenarioResult } from './soak/common.js';
import { runFuzz } from './soak/fuzz.js';
import { runKill9 } from './soak/kill9.js';
import { runStateDamage } from './soak/state-damage.js';
import { runFlood } from './soak/flood.js';
import { runPermissions } from './soak/permissions.js';
import { runPidReuse } from './soak/pid-reuse.js';
import { runLongRun } from './soak/long-run.js';
import { runDbusFuzz } from './soak/dbus-fuzz.js';
import { runDbusPermissions } from './soak/dbus-permissions.js';

// The berthds measured here stay off the system bus, where the reference machined owns org.freedesktop.machine1
// (the D-Bus scenarios pass --dbus=yes and a private bus of their own).
process.env.BERTH_DBUS ??= 'no';

const SCENARIOS: Record<string, (o: ScenarioOptions & { seed?: number }) => Promise<ScenarioResult>> = {
  fuzz: runFuzz,
  kill9: runKill9,
  'state-damage': runStateDamage,
  flood: runFlood,
  permissions: runPermissions,
  'pid-reuse': runPidReuse,
  'long-run': runLongRun,
  'dbus-fuzz': runDbusFuzz,
  'dbus-permissions': runDbusPermissions,
};

function line(r: ScenarioResult): string {
  if (r.skipped) return `${r.name.padEnd(13)} SKIP  ${r.skipped}`;
  const figures = Object.entries(r.figures)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  return `${r.name.padEnd(13)} ${r.failures.length ? 'FAIL' : 'ok  '}  ${figures}`;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      short: { type: 'boolean' },
      only: { type: 'string' },
      seed: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(`Usage: soak [--short] [--only ${Object.keys(SCENARIOS).join('|')}[,…]] [--seed N] [--json]\n`);
    return 0;
  }
  const only = values.only ? values.only.split(',').map((s) => s.trim()) : Object.keys(SCENARIOS);
  for (const n of only) {
    if (!SCENARIOS[n]) {
      process.stderr.write(`soak: unknown scenario '${n}' (known: ${Object.keys(SCENARIOS).join(', ')})\n`);
      return 2;
    }
  }
  const options: ScenarioOptions & { seed?: number } = {
    short: values.short ?? false,
    log: (l) => process.stderr.write(`  ${l}\n`),
    ...(values.seed !== undefined ? { seed: Number(values.seed) } : {}),
  };
  const results: ScenarioResult[] = [];
  for (const n of only) {
    const t0 = Date.now();
    process.stderr.write(`soak: ${n}${options.short ? ' (short)' : ''}\n`);
    let r: ScenarioResult;
    try {
      r = await SCENARIOS[n]!(options);
    } catch (e) {
      r = { name: n, figures: {}, failures: [`scenario aborted: ${(e as Error).stack ?? e}`] };
    }
    r.figures.seconds = ((Date.now() - t0) / 1000).toFixed(0);
    results.push(r);
    process.stdout.write(line(r) + '\n');
  }
  process.stdout.write('\n');
  for (const r of results) {
    for (const f of r.failures) process.stdout.write(`${r.name}: FAILURE: ${f}\n`);
    for (const n of r.notes ?? []) process.stdout.write(`${r.name}: note: ${n}\n`);
  }
  if (values.json) process.stdout.write(JSON.stringify(results, null, 2) + '\n');
  return results.some((r) => r.failures.length > 0) ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`soak: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  },
);
