/**
 * A machine with systemd as PID 1 for the system tests and the systemd-host bench: a copy of scripts/systemd-host-tree.sh's Debian tree
 * (systemd, dbus, systemd-container; or its libvirt variant from scripts/libvirt-host-tree.sh) booted by berth-spawn --boot, with this checkout and node bind-mounted
 * read-only at their host paths; commands run inside through nsenter into all its namespaces.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execa, type ResultPromise } from 'execa';

/** This checkout: the nearest directory above with berth's package.json (from bench/lib or dist/bench/lib). */
export const checkout = ((): string => {
  for (let d = import.meta.dirname; path.dirname(d) !== d; d = path.dirname(d)) {
    try {
      if ((JSON.parse(fs.readFileSync(path.join(d, 'package.json'), 'utf8')) as { name?: string }).name === 'berth') return d;
    } catch { /* not here */ }
  }
  throw new Error('cannot find the berth checkout');
})();
const PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface Booted {
  name: string;
  leader: number;
  /** run argv inside (a clean environment, cwd /), never rejecting */
  inside(argv: string[], opts?: { input?: string }): Promise<{ exitCode: number; stdout: string; stderr: string }>;
  /** run a shell line inside in the checkout */
  sh(line: string): Promise<{ exitCode: number; stdout: string; stderr: string }>;
  stop(): Promise<void>;
}

/** Why this host cannot boot such a machine, or undefined. */
export function cannotBoot(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (berth-spawn, nsenter, cgroups)';
  for (const f of ['dist/bin/berth-spawn.mjs', 'dist/bin/berthctl.mjs']) {
    if (!fs.existsSync(path.join(checkout, f))) return `${f} is missing (npm run build)`;
  }
  if (!fs.existsSync('/usr/bin/nsenter')) return 'nsenter is missing (util-linux)';
  return undefined;
}

/** Build (once, cached) the tree; returns its path or throws with the script's words. */
export async function systemdHostTree(): Promise<string> {
  const r = await execa('bash', [path.join(checkout, 'scripts/systemd-host-tree.sh')], { reject: false, timeout: 600_000 });
  if (r.exitCode !== 0) throw new Error(`scripts/systemd-host-tree.sh failed: ${r.stderr.trim().split('\n').slice(-3).join(' / ')}`);
  return r.stdout.trim().split('\n').at(-1)!;
}

/** Build (once, cached) scripts/libvirt-host-tree.sh's variant: the host tree plus libvirt and qemu. */
export async function libvirtHostTree(): Promise<string> {
  const r = await execa('bash', [path.join(checkout, 'scripts/libvirt-host-tree.sh')], { reject: false, timeout: 900_000 });
  if (r.exitCode !== 0) throw new Error(`scripts/libvirt-host-tree.sh failed: ${r.stderr.trim().split('\n').slice(-3).join(' / ')}`);
  return r.stdout.trim().split('\n').at(-1)!;
}

export async function bootMachine(tree: string, work: string, name: string, binds: string[] = []): Promise<Booted> {
  const root = path.join(work, 'tree');
  await execa('cp', ['-a', '--reflink=auto', tree, root]);
  for (const b of binds) fs.mkdirSync(path.join(root, b.split(':')[1] ?? b), { recursive: true });
  const rt = path.join(work, 'run');
  fs.mkdirSync(rt, { recursive: true });
  const node = process.execPath;
  const spawn: ResultPromise = execa(node, [
    path.join(checkout, 'dist/bin/berth-spawn.mjs'), '-D', root, '-M', name, '--boot', '--register=no', `--runtime-dir=${rt}`,
    `--bind-ro=${checkout}`, `--bind-ro=${node}`, ...binds.map((b) => `--bind-ro=${b}`),
  ], { reject: false, all: true, env: { BERTH_DBUS: 'no' } });
  let log = '';
  const leader = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no READY=1 within 90 s; console:\n${log.slice(-2000)}`)), 90_000);
    spawn.all!.on('data', (d: Buffer) => {
      log += d.toString();
      const m = /is running \(PID 1 is (\d+) on the host\)/.exec(log);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    void spawn.then((r) => {
      clearTimeout(timer);
      reject(new Error(`berth-spawn ended (${r.exitCode}) before the machine ran: ${log.slice(-2000)}`));
    });
  });
  const inside = async (argv: string[], opts: { input?: string } = {}) => {
    const r = await execa('nsenter', ['-t', String(leader), '-a', 'env', '-i', PATH, 'LANG=C.UTF-8', 'SYSTEMD_COLORS=0', 'SYSTEMD_PAGER=', ...argv],
      { reject: false, timeout: 120_000, ...(opts.input !== undefined ? { input: opts.input } : {}) });
    return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
  };
  return {
    name,
    leader,
    inside,
    sh: (line) => inside(['sh', '-c', `cd ${checkout} && ${line}`]),
    async stop() {
      spawn.kill('SIGTERM');
      const done = await Promise.race([spawn.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 30_000))]);
      if (!done) {
        spawn.kill('SIGKILL');
        await spawn;
        await execa(node, [path.join(checkout, 'dist/bin/berthctl.mjs'), `--runtime-dir=${rt}`, 'cleanup', '--kill', name], { reject: false });
      }
    },
  };
}
