/**
 * Container-shaped leaders for the copy and bind mount tests: a static busybox tree that a process makes
 * its root with pivot_root in a mount namespace of its own, optionally inside a user namespace mapped at
 * a given shift (root writes the maps, so no newuidmap is needed), moved into a unit-shaped cgroup.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { madeCgroups } from './fixture.js';
import { detectCgroupLayout } from '../../../src/domain/cgroup-paths.js';
import { waitFor } from '../../helpers/wait.js';

export const BUSYBOX = ['/bin/busybox', '/usr/bin/busybox'].find((p) => fs.existsSync(p));

/** A tree with /bin/busybox, /etc/hostname, a world-writable /tmp and /old (pivot_root's put_old). */
export function busyboxRoot(dir: string): string {
  for (const d of ['bin', 'etc', 'tmp', 'old']) fs.mkdirSync(path.join(dir, d), { recursive: true });
  fs.chmodSync(path.join(dir, 'tmp'), 0o1777);
  fs.copyFileSync(BUSYBOX!, path.join(dir, 'bin/busybox'));
  fs.chmodSync(path.join(dir, 'bin/busybox'), 0o755);
  fs.writeFileSync(path.join(dir, 'etc/hostname'), 'inside\n');
  return dir;
}

const layout = detectCgroupLayout();

/** Move `pid` into `/UNIT` in every hierarchy (removed with the fixture's other cgroups). */
export function moveToUnit(pid: number, unit: string): void {
  for (const h of layout.hierarchies) {
    const d = path.join(h.root, unit);
    fs.mkdirSync(d, { recursive: true });
    fs.writeFileSync(path.join(d, 'cgroup.procs'), `${pid}\n`);
    madeCgroups.push(d);
  }
}

/**
 * A leader whose root is `root` in a mount namespace of its own (and with `shift`, a user namespace
 * mapping 0..65535 to shift..shift+65535). Resolves once it sleeps in there.
 */
export async function containerLeader(root: string, unit: string, shift?: number): Promise<ChildProcess> {
  // The namespaces' root only gets its capabilities from an exec after the maps are written, hence the inner sh.
  const inner = 'mount --make-rprivate / && mount --bind "$1" "$1" && cd "$1" && pivot_root . old && exec /bin/busybox sleep 3600';
  const script = `read go; exec sh -c '${inner}' inner "$1"`;
  const ns = shift === undefined ? ['-m', '--propagation', 'private'] : ['-U', '-m', '--propagation', 'private'];
  // In a user namespace the leader runs as the host uid that becomes its root.
  const as = shift === undefined ? [] : ['setpriv', `--reuid=${shift}`, `--regid=${shift}`, '--clear-groups'];
  const argv = [...as, 'unshare', ...ns, 'sh', '-c', script, 'leader', root];
  const c = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'ignore', 'inherit'] });
  const pid = c.pid!;
  try {
    await started(c, pid, shift, unit);
  } catch (e) {
    c.kill('SIGKILL');
    throw e;
  }
  return c;
}

async function started(c: ChildProcess, pid: number, shift: number | undefined, unit: string): Promise<void> {
  await waitFor(() => fs.readlinkSync(`/proc/${pid}/ns/mnt`) !== fs.readlinkSync('/proc/self/ns/mnt'), 'the leader to unshare', { timeoutMs: 10_000 });
  if (shift !== undefined) {
    fs.writeFileSync(`/proc/${pid}/uid_map`, `0 ${shift} 65536\n`);
    fs.writeFileSync(`/proc/${pid}/setgroups`, 'deny');
    fs.writeFileSync(`/proc/${pid}/gid_map`, `0 ${shift} 65536\n`);
  }
  moveToUnit(pid, unit);
  c.stdin!.end('go\n');
  await waitFor(() => {
    try {
      return fs.readlinkSync(`/proc/${pid}/exe`).endsWith('busybox');
    } catch {
      return false;
    }
  }, 'the leader to pivot into its root', { timeoutMs: 10_000 });
}
