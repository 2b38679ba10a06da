/**
 * npm run bench: berth side by side with the real systemd-machined 257 and 262 (and, when asked, the
 * berthd of an earlier commit), measured in the same run.
 *
 *   node dist/bench/main.js [--quick] [--only NAME[,NAME…]]... [--no-262] [--baseline REV] [--list]
 *
 * Each scenario prints one line: berth's figure, each other server's figure with berth's ratio to it,
 * the target and PASS or MISS.
 * Throughput comes from the C load generator (bench/loadgen.c) so that the client is not the bottleneck.
 * Targets are reported, never asserted: the exit status is 0 unless a scenario could not run (FAIL).
 * Needs root (cgroups, user namespaces, /run/systemd). A machined that already serves /run is used and
 * left running; one started here is stopped at the end.
 */
import fs from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { BenchContext } from './lib/context.js';
import { buildTools } from './lib/loadgen.js';
import { Report } from './lib/report.js';
import { buildBaseline } from './lib/baseline.js';
import { callOnce } from './lib/servers.js';
import { errorText, payAll, tempDir } from './lib/util.js';
import { LAUNCHER_SCENARIOS, launcherScenarios } from './scenarios/launcher.js';
import { REGISTRY_SCENARIOS, registryScenarios } from './scenarios/registry.js';
import { USERDB_SCENARIOS, userdbScenarios } from './scenarios/userdb.js';
import { VARLINK_SCENARIOS, varlinkScenarios } from './scenarios/varlink.js';
import { DBUS_SCENARIOS, dbusScenarios } from './scenarios/dbus.js';
import { SYSTEMD_HOST_SCENARIOS, systemdHostScenarios } from './scenarios/systemd-host.js';

// The berthds measured here stay off the system bus, where the reference machined owns org.freedesktop.machine1.
process.env.BERTH_DBUS ??= 'no';

const ALL = [...VARLINK_SCENARIOS, ...REGISTRY_SCENARIOS, ...USERDB_SCENARIOS, ...DBUS_SCENARIOS, ...LAUNCHER_SCENARIOS, ...SYSTEMD_HOST_SCENARIOS];

const USAGE = `Usage: npm run bench -- [--quick] [--only NAME[,NAME…]] [--no-262] [--baseline REV] [--list]

  --quick        shorter measurements, 2,000 instead of 10,000 machines, 200 instead of 1,000 userns machines
  --only NAME    run only these scenarios; NAME is a scenario or a prefix (varlink, registry.scale, userdb.uid)
  --no-262       do not start machined 262 (in a mount namespace of its own) beside 257
  --baseline REV also run the berthd of git revision REV (built in a temporary worktree) in every
                 comparison; a row where berth is clearly slower than it says REGR
  --list         print the scenario names
`;

async function productOf(socket: string): Promise<string> {
  const info = await callOnce(socket, 'org.varlink.service.GetInfo');
  return `${info.product ?? '?'} ${info.version ?? ''}`.trim();
}

function loadavg(): string {
  return os.loadavg().map((l) => l.toFixed(2)).join(' ');
}

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: process.argv.slice(2),
      options: {
        quick: { type: 'boolean' },
        only: { type: 'string', multiple: true },
        list: { type: 'boolean' },
        'no-262': { type: 'boolean' },
        baseline: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    process.stderr.write(`bench: ${errorText(e)}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (values.list) {
    process.stdout.write(ALL.join('\n') + '\n');
    return 0;
  }
  const only = (values.only ?? []).flatMap((o) => o.split(',')).map((o) => o.trim()).filter(Boolean);
  const unknown = only.filter((o) => !ALL.some((n) => n === o || n.startsWith(`${o}.`)));
  if (unknown.length) {
    process.stderr.write(`bench: no scenario named ${unknown.join(', ')} (see --list)\n`);
    return 2;
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write('bench: needs root (cgroup scopes, user namespaces, the real machined on /run)\n');
    return 2;
  }

  await buildTools();
  const baseline = values.baseline ? await buildBaseline(values.baseline) : undefined;
  const scratch = tempDir('bn-bench-');
  const report = new Report();
  const ctx = new BenchContext({ quick: values.quick ?? false, only, with262: !values['no-262'], ...(baseline ? { baseline } : {}) }, report, scratch);
  const started = Date.now();
  let crashed = false;
  const onSignal = () => {
    process.stderr.write('bench: interrupted, cleaning up\n');
    report.silence();
    void payAll()
      .then(() => ctx.close())
      .finally(() => {
        fs.rmSync(scratch, { recursive: true, force: true });
        void (baseline?.remove() ?? Promise.resolve()).finally(() => process.exit(130));
      });
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    let machinedLine = 'not used';
    let line262 = ctx.options.with262 ? 'not used' : 'not measured (--no-262)';
    if (ctx.anySelected(ALL.filter((n) => !n.startsWith('launcher.') && !n.startsWith('systemd-host.') && n !== 'varlink.activation' && !n.startsWith('registry.scale.')))) {
      const m = await ctx.machined();
      machinedLine = `${await m.product()} on ${m.socket}${m.startedHere ? ' (started by the bench)' : ' (already running)'}`;
      const m262 = await ctx.machined262();
      if (m262) line262 = `${await productOf(m262.socket)} on ${m262.socket} (own mount namespace)`;
      else if (ctx.missing262) line262 = `not measured: ${ctx.missing262}`;
      await ctx.baseline();
    }
    console.log(`berth bench — ${new Date().toISOString()}; node ${process.version}; ${os.cpus().length} CPUs; ${values.quick ? 'quick' : 'full'} run`);
    console.log(`machined 257: ${machinedLine}`);
    console.log(`machined 262: ${line262}`);
    if (baseline) console.log(`baseline: berthd of ${baseline.rev}`);
    console.log(
      `per figure: median of ${ctx.rounds} round${ctx.rounds > 1 ? 's' : ''} of ${ctx.duration} s (after ${ctx.warmup} s warm-up), berth and the others alternating; load from dist/bench/loadgen`,
    );
    console.log(`load average at start: ${loadavg()}`);
    console.log('');
    report.header(ctx.peerLabels());
    await varlinkScenarios(ctx);
    await registryScenarios(ctx);
    await userdbScenarios(ctx);
    await dbusScenarios(ctx);
    await launcherScenarios(ctx);
    await systemdHostScenarios(ctx);
  } catch (e) {
    crashed = true;
    process.stderr.write(`bench: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  } finally {
    await ctx.close();
    fs.rmSync(scratch, { recursive: true, force: true });
    await baseline?.remove();
  }
  const { failed } = report.summary();
  console.log(`load average at end: ${loadavg()}`);
  console.log(`took ${((Date.now() - started) / 1000).toFixed(0)} s`);
  return crashed || failed > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`bench: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
