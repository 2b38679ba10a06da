/**
 * `berthctl install [--prefix DIR] [--dry-run] [--force]` and `berthctl uninstall [--dry-run]`: put berth on
 * this host in place of systemd-machined, or take it off again and give machined back as it was. Plans
 * first (install-plan.ts), prints each change as it is made (install-apply.ts), and undoes a half-done run.
 * BERTH_INSTALL_ROOT moves every path below another root (for tests only).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { applySteps, realSystemd } from './install-apply.js';
import { describeStep, InstallRefused, MANIFEST, planInstall, planUninstall, type Step } from './install-plan.js';

const USAGE = `berthctl install [--prefix DIR] [--dry-run] [--force]
berthctl uninstall [--dry-run]
`;

/** The checkout or package this berthctl runs from: the nearest directory above with berth's package.json. */
export function berthSource(from = path.dirname(fileURLToPath(import.meta.url))): string | undefined {
  for (let d = from; ; d = path.dirname(d)) {
    try {
      if ((JSON.parse(fs.readFileSync(path.join(d, 'package.json'), 'utf8')) as { name?: string }).name === 'berth') return d;
    } catch {
      /* not here */
    }
    if (path.dirname(d) === d) return undefined;
  }
}

export async function installVerb(verb: 'install' | 'uninstall', argv: string[]): Promise<number> {
  let v;
  try {
    v = parseArgs({
      args: argv,
      strict: true,
      options: { prefix: { type: 'string' }, 'dry-run': { type: 'boolean' }, force: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    }).values;
  } catch (e) {
    process.stderr.write(`berthctl ${verb}: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (v.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (verb === 'uninstall' && (v.prefix !== undefined || v.force)) {
    process.stderr.write(`berthctl uninstall takes no --prefix or --force (the manifest ${MANIFEST} says what to remove)\n`);
    return 2;
  }
  const root = process.env.BERTH_INSTALL_ROOT || '/';
  const dry = v['dry-run'] ?? false;
  const systemd = realSystemd(root);
  const out = (s: string): void => void process.stdout.write(`${s}\n`);
  const list = (steps: Step[]): void => steps.forEach((s) => out(`would ${describeStep(s)}`));
  try {
    if (verb === 'install') {
      const prefix = path.resolve(v.prefix ?? '/usr/local');
      const source = berthSource();
      if (!source) throw new InstallRefused('cannot find the berth build this berthctl belongs to');
      const plan = planInstall({ root, prefix, source, node: process.execPath, force: v.force ?? false, systemd });
      if (plan.alreadyInstalled) {
        out(`berth is already installed (prefix ${prefix}, ${MANIFEST}); nothing changed.`);
        return 0;
      }
      const steps: Step[] = [...plan.steps, { kind: 'write', path: MANIFEST, content: JSON.stringify(plan.manifest, null, 2) + '\n', mode: 0o644 }];
      if (dry) {
        list(steps);
      } else {
        applySteps(root, steps, systemd, out);
      }
      if (plan.carried.length) out(`machines carried over from systemd-machined: ${plan.carried.join(', ')}`);
      if (!systemd.pid1) {
        out(`systemd is not PID 1 here: no units were enabled. Start the socket activator instead:`);
        out(`  ${path.join(prefix, 'bin/berth-activate')} --runtime-dir /run --idle-exit 60 &`);
      }
      if (!dry) out(`berth installed; 'berthctl uninstall' removes it${systemd.pid1 ? ' and gives systemd-machined back' : ''}.`);
      return 0;
    }
    const { steps } = planUninstall(root, systemd);
    if (dry) list(steps);
    else {
      applySteps(root, steps, systemd, out);
      out('berth uninstalled.');
    }
    return 0;
  } catch (e) {
    const msg = (e as Error).message;
    process.stderr.write(`berthctl ${verb}: ${msg}${e instanceof InstallRefused || msg.includes('undone') ? '' : '; nothing was changed'}\n`);
    return 1;
  }
}
