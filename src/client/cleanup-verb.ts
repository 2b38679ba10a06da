/**
 * `berthctl cleanup [NAME…]`: removes what berth-spawn left of machines whose berth-spawn ended without its
 * teardown (kill -9, a crash): veth links and scopes it marked, mounts, run directories, locks, UID leases and
 * launch records under RUNTIME/berth (src/launcher/leftovers.ts finds them). A machine whose berth-spawn runs is
 * left alone, and so is one whose processes still run (unless --kill). Works on the host, not through berthd.
 */
import { detectCgroupLayout } from '../domain/cgroup-paths.js';
import { isValidMachineName, machineNameRefusal } from '../domain/machine-name.js';
import { describeRemoval, machinesWithTraces, removeLeftovers, surveyMachine, type LeftoverKind } from '../launcher/leftovers.js';
import { formatJson, type JsonMode } from './output.js';
import { EXIT } from './machine-verbs.js';
import { CliError } from './varlink-verbs.js';

export interface CleanupOptions {
  runtimeDir: string;
  json?: JsonMode;
  dryRun: boolean;
  /** also stop processes still in the scope of a machine whose berth-spawn ended */
  kill: boolean;
}

interface Entry { machine: string; kind: LeftoverKind; path: string; launcherPid?: number }

export async function cleanupVerb(names: string[], o: CleanupOptions): Promise<number> {
  for (const n of names) if (!isValidMachineName(n)) throw new CliError(machineNameRefusal(n), EXIT.usage);
  const hierarchies = detectCgroupLayout().hierarchies;
  const targets = names.length ? [...new Set(names)] : machinesWithTraces(o.runtimeDir, hierarchies);
  const removed: Entry[] = [];
  const failed: (Entry & { error: string })[] = [];
  const leftAlone: { machine: string; reason: string }[] = [];
  const say = (s: string): void => { if (!o.json) process.stdout.write(`${s}\n`); };

  for (const name of targets) {
    const m = surveyMachine(o.runtimeDir, name, { hierarchies });
    const orphaned = m.orphans > 0 && !o.kill
      ? `${m.orphans} processes still run in its scope although its berth-spawn ended (--kill stops them)` : undefined;
    const reason = m.running ?? orphaned;
    if (reason) {
      leftAlone.push({ machine: name, reason });
      say(`left alone: machine ${name}: ${reason}`);
      continue;
    }
    const r = await removeLeftovers(m, { dryRun: o.dryRun, kill: o.kill });
    const entry = (i: { kind: LeftoverKind; path: string }): Entry => ({ machine: name, kind: i.kind, path: i.path, ...(m.launcherPid ? { launcherPid: m.launcherPid } : {}) });
    for (const i of r.removed) {
      removed.push(entry(i));
      say(describeRemoval(m, i, o.dryRun ? 'would remove' : 'removed'));
    }
    for (const f of r.failed) {
      failed.push({ ...entry(f.item), error: f.error });
      process.stderr.write(`berthctl: cannot remove leftover ${f.item.kind} ${f.item.path} of machine ${name}: ${f.error}\n`);
    }
  }
  if (o.json) process.stdout.write(formatJson({ dryRun: o.dryRun, removed, leftAlone, failed }, o.json) + '\n');
  else if (!removed.length && !failed.length && !leftAlone.length) say('No leftovers.');
  return failed.length ? EXIT.failure : EXIT.ok;
}
