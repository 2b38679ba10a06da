/**
 * berthctl's verbs for configured machines, `start|stop|poweroff|reboot NAME…` and `configured`: calls of
 * io.berth.Launcher, which asks berthd's launch service to run or stop a machine from its NAME.berth file.
 */
import { VarlinkClient } from '../varlink/client.js';
import { VarlinkError } from '../varlink/errors.js';
import { IoBerthLauncher } from '../generated/io.berth.Launcher.js';
import { formatJson, formatTable, type JsonMode } from './output.js';
import { CliError } from './varlink-verbs.js';
import { EXIT, refuseBadMachineNames } from './machine-verbs.js';
import { unreachable } from './unreachable.js';

export const CONFIGURED_MACHINE_VERBS = new Set(['start', 'stop', 'poweroff', 'reboot', 'configured']);

export interface ConfiguredMachineVerbOptions {
  address: string;
  json?: JsonMode;
  legend: boolean;
  quiet: boolean;
}

/** Turns a Launcher error into berthctl's message and exit status (also for instance-verbs.ts). */
export function explainLauncherError(e: unknown, what: string): never {
  if (!(e instanceof VarlinkError)) throw e;
  const p = e.parameters as { log?: string[]; reason?: string; path?: string; line?: number };
  let detail = '';
  if (p.reason) detail = `: ${p.path}${p.line ? `:${p.line}` : ''}: ${p.reason}`;
  if (p.log?.length) detail = `\n${p.log.map((l) => `  ${l}`).join('\n')}`;
  const code = e.error === 'io.berth.Launcher.NoSuchConfiguration' ? EXIT.noSuchMachine : EXIT.failure;
  throw new CliError(`${what}: ${e.error}${detail}`, code);
}

export async function configuredMachineVerb(verb: string, names: string[], o: ConfiguredMachineVerbOptions): Promise<number> {
  if (verb !== 'configured' && names.length === 0) throw new CliError(`Usage: berthctl ${verb} NAME…`, EXIT.usage);
  if (verb !== 'configured') refuseBadMachineNames(names, 'new');
  let c: VarlinkClient;
  try {
    c = await VarlinkClient.connect(o.address, { interfaces: [IoBerthLauncher], timeout: 0 });
  } catch (e) {
    throw unreachable(o.address, e);
  }
  const l = c.proxy(IoBerthLauncher);
  try {
    if (verb === 'configured') {
      const { machines } = await l.ListConfigured().catch((e) => explainLauncherError(e, 'Could not list configurations'));
      if (o.json) process.stdout.write(formatJson(machines, o.json) + '\n');
      else {
        const rows = machines.map((m) => [m.name, m.class, m.state ?? '-', m.supervisor ? String(m.supervisor) : '-', m.path]);
        process.stdout.write(formatTable(o.legend ? ['MACHINE', 'CLASS', 'STATE', 'SUPERVISOR', 'CONFIGURATION'] : undefined, rows));
      }
      return EXIT.ok;
    }
    for (const name of names) {
      switch (verb) {
        case 'start':
          try {
            for await (const s of l.Start.more({ name })) {
              if (o.json) process.stdout.write(formatJson({ name, ...s }, o.json) + '\n');
              else if (!o.quiet) process.stdout.write(`${name}: ${s.state}${s.leader ? ` (leader ${s.leader})` : s.supervisor ? ` (supervisor ${s.supervisor})` : ''}\n`);
            }
          } catch (e) {
            explainLauncherError(e, `Could not start ${name}`);
          }
          break;
        case 'stop':
          await l.Stop({ name }).catch((e) => explainLauncherError(e, `Could not stop ${name}`));
          break;
        case 'poweroff':
          await l.Poweroff({ name }).catch((e) => explainLauncherError(e, `Could not power off ${name}`));
          break;
        case 'reboot': {
          const r = await l.Reboot({ name }).catch((e) => explainLauncherError(e, `Could not reboot ${name}`));
          if (!o.quiet) process.stdout.write(`${name}: running again (supervisor ${r.supervisor})\n`);
          break;
        }
      }
    }
    return EXIT.ok;
  } finally {
    c.close();
  }
}
