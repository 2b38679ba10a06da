/**
 * Real busybox trees for the container tests: built fresh in a temp dir from the host's static busybox
 * (apt: busybox-static) and a small static helper compiled here (gcc + libc6-dev). Nothing is mocked.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa, execaSync } from 'execa';
import { afterAll, beforeAll } from 'vitest';

const here = path.dirname(new URL(import.meta.url).pathname);

/** Why the container tests cannot run here, or undefined when they can. */
export function cannotRun(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (user namespaces with arbitrary maps, cgroups, mounts)';
  try {
    if (Number(fs.readFileSync('/proc/sys/user/max_user_namespaces', 'utf8')) === 0) return 'user namespaces are disabled (max_user_namespaces=0)';
  } catch { /* older kernels have no knob */ }
  const bb = busyboxPath();
  if (!bb) return 'no static busybox (apt-get install busybox-static)';
  for (const t of ['unshare', 'nsenter', 'gcc', 'ip']) {
    try { execaSync('sh', ['-c', 'command -v "$1"', 'sh', t]); } catch { return `${t} is missing`; }
  }
  const libc = execaSync('gcc', ['-print-file-name=libc.a'], { reject: false }).stdout.trim();
  if (!libc.startsWith('/')) return 'no static libc for the test helper (apt-get install libc6-dev)';
  return undefined;
}

export function busyboxPath(): string | undefined {
  for (const p of ['/bin/busybox', '/usr/bin/busybox']) {
    try {
      const out = execaSync('file', ['-L', p], { reject: false }).stdout;
      if (fs.existsSync(p) && (!out || /statically linked|static-pie/.test(out))) return p;
    } catch { if (fs.existsSync(p)) return p; }
  }
  return undefined;
}

let helperBuilt: string | undefined;

export async function buildHelper(dir: string): Promise<string> {
  if (helperBuilt && fs.existsSync(helperBuilt)) return helperBuilt;
  const out = path.join(dir, 'ct-helper');
  await execa('gcc', ['-static', '-O2', '-Wall', '-o', out, path.join(here, 'helpers', 'ct-helper.c')]);
  helperBuilt = out;
  return out;
}

export interface Tree { root: string; dir: string }

/**
 * A busybox tree whose /init.sh is `init`. Run as PID 1 with INIT; the script reports readiness itself with
 * `ct-helper notify READY=1` (sent on PID 1's behalf), typically after installing its signal traps.
 */
export async function busyboxTree(init: string, opts: { name?: string } = {}): Promise<Tree> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-ct-'));
  const root = path.join(dir, opts.name ?? 'tree');
  for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'etc', 'proc', 'sys', 'dev', 'run', 'tmp', 'root', 'data', 'var/log/journal', 'usr/share/zoneinfo/Etc']) {
    fs.mkdirSync(path.join(root, d), { recursive: true });
  }
  fs.chmodSync(path.join(root, 'tmp'), 0o1777);
  fs.copyFileSync(busyboxPath()!, path.join(root, 'bin/busybox'));
  fs.chmodSync(path.join(root, 'bin/busybox'), 0o755);
  const applets = (await execa(busyboxPath()!, ['--list'])).stdout.split('\n').filter(Boolean);
  for (const a of applets) if (a !== 'busybox') fs.symlinkSync('busybox', path.join(root, 'bin', a));
  fs.copyFileSync(await buildHelper(dir), path.join(root, 'usr/bin/ct-helper'));
  fs.chmodSync(path.join(root, 'usr/bin/ct-helper'), 0o755);
  fs.writeFileSync(path.join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n');
  fs.writeFileSync(path.join(root, 'etc/group'), 'root:x:0:\ntty:x:5:\nnobody:x:65534:\n');
  fs.writeFileSync(path.join(root, 'etc/os-release'), 'ID=busybox\nNAME=BusyBox\n');
  if (fs.existsSync('/usr/share/zoneinfo/Etc/UTC')) fs.copyFileSync('/usr/share/zoneinfo/Etc/UTC', path.join(root, 'usr/share/zoneinfo/Etc/UTC'));
  fs.writeFileSync(path.join(root, 'init.sh'), `#!/bin/sh\n${init}\n`, { mode: 0o755 });
  return { root, dir };
}

export const INIT = ['/bin/sh', '/init.sh'];

/** Shell lines for init scripts: a clean stop on SIGRTMIN+3, then READY=1, then idle. */
export const TRAP_READY_IDLE = `trap 'echo stopping-on-rtmin3; exit 0' 37
/usr/bin/ct-helper notify READY=1
while :; do sleep 1 & wait $!; done`;

export function removeTree(t: Tree): void {
  fs.rmSync(t.dir, { recursive: true, force: true });
}

/**
 * Scratch space for a file of container tests: a runtime directory (made before the tests, reachable
 * by the container's root) and busybox trees made with `tree()`, all removed after the tests.
 * Nothing is made when `why` says the tests cannot run.
 */
export function useScratch(why: string | undefined): { readonly rt: string; tree(init: string): Promise<Tree> } {
  const trees: Tree[] = [];
  const scratch = {
    rt: '',
    async tree(init: string): Promise<Tree> {
      const t = await busyboxTree(init);
      trees.push(t);
      return t;
    },
  };
  beforeAll(() => {
    if (why) return;
    scratch.rt = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-rt-'));
    fs.chmodSync(scratch.rt, 0o755); // the container's root must reach its run directory
  });
  afterAll(() => {
    for (const t of trees) removeTree(t);
    if (scratch.rt) fs.rmSync(scratch.rt, { recursive: true, force: true });
  });
  return scratch;
}
