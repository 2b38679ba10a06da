/**
 * Host-side preparation of a container: the directory mounted read-only at /run/host (os-release,
 * container-manager, container-uuid, credentials/, the notify socket), /etc/localtime in the tree, and
 * the journal link. Everything written into the tree is checked component by component so that a tree
 * with symlinks pointing out of it cannot make the launcher write on the host.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Credential, LinkJournal } from './options.js';
import { MANAGER_NAME } from './environment.js';

export interface Owner { uid: number; gid: number }

export function hostOsReleaseText(): string {
  for (const f of ['/etc/os-release', '/usr/lib/os-release']) {
    try { return fs.readFileSync(f, 'utf8'); } catch { /* next */ }
  }
  return '';
}

export interface HostDir { dir: string; notifyPath: string; credentialsDir?: string }

/** Fill RUN/host; the notify socket is bound later by the supervisor at `notifyPath`. */
export function prepareHostDir(runDir: string, uuid: string, owner: Owner, credentials: Credential[]): HostDir {
  const dir = path.join(runDir, 'host');
  fs.mkdirSync(dir, { mode: 0o755 });
  fs.writeFileSync(path.join(dir, 'os-release'), hostOsReleaseText(), { mode: 0o444 });
  fs.writeFileSync(path.join(dir, 'container-manager'), `${MANAGER_NAME}\n`, { mode: 0o444 });
  fs.writeFileSync(path.join(dir, 'container-uuid'), `${uuid}\n`, { mode: 0o444 });
  let credentialsDir: string | undefined;
  if (credentials.length) {
    credentialsDir = path.join(dir, 'credentials');
    fs.mkdirSync(credentialsDir, { mode: 0o700 });
    for (const c of credentials) {
      const p = path.join(credentialsDir, c.id);
      fs.writeFileSync(p, c.data, { mode: 0o400, flag: 'wx' });
      fs.chownSync(p, owner.uid, owner.gid);
    }
    fs.chmodSync(credentialsDir, 0o500);
    fs.chownSync(credentialsDir, owner.uid, owner.gid);
  }
  return { dir, notifyPath: path.join(dir, 'notify'), credentialsDir };
}

/** Resolve `rel` inside `root` refusing symlinks on the way (the last component may be anything). */
export function safeInside(root: string, rel: string): string | undefined {
  const parts = rel.split('/').filter(Boolean);
  let cur = root;
  for (let i = 0; i < parts.length - 1; i++) {
    cur = path.join(cur, parts[i]!);
    let st: fs.Stats;
    try { st = fs.lstatSync(cur); } catch { return undefined; }
    if (!st.isDirectory()) return undefined;
  }
  return path.join(root, ...parts);
}

/**
 * Make the tree's /etc/localtime a relative symlink to the host's zone when the tree carries that zone
 * (nspawn's --timezone=auto, symlink flavour). Returns what it did, for logs and tests.
 */
export function syncLocaltime(root: string, owner: Owner): 'linked' | 'unchanged' | 'no-zone' | 'no-etc' | 'host-has-none' {
  let target: string;
  try { target = fs.readlinkSync('/etc/localtime'); } catch { return 'host-has-none'; }
  const m = /(?:^|\/)zoneinfo\/(.+)$/.exec(target);
  if (!m) return 'host-has-none';
  const zone = m[1]!;
  const etc = safeInside(root, 'etc/localtime');
  if (!etc || !fs.existsSync(path.dirname(etc))) return 'no-etc';
  const zoneFile = safeInside(root, `usr/share/zoneinfo/${zone}`);
  if (!zoneFile || !fs.existsSync(zoneFile)) return 'no-zone';
  const want = `../usr/share/zoneinfo/${zone}`;
  let cur: string | undefined;
  try { cur = fs.readlinkSync(etc); } catch { cur = undefined; }
  if (cur === want) return 'unchanged';
  const tmp = `${etc}.berth-tmp`;
  fs.rmSync(tmp, { force: true });
  fs.symlinkSync(want, tmp);
  fs.lchownSync(tmp, owner.uid, owner.gid);
  fs.renameSync(tmp, etc);
  return 'linked';
}

/** The machine ID the container will use: its own /etc/machine-id if set, else the UUID (as systemd does). */
export function containerMachineId(root: string, uuid: string): string {
  const p = safeInside(root, 'etc/machine-id');
  if (p) {
    try {
      const id = fs.readFileSync(p, 'utf8').trim();
      if (/^[0-9a-f]{32}$/.test(id)) return id;
    } catch { /* none */ }
  }
  return uuid.replace(/-/g, '');
}

export interface JournalLink { bind?: { source: string; target: string; readOnly: boolean }; created: string[] }

/**
 * `--link-journal`: host/try-host keep the journal on the host and bind it into the tree; guest/try-guest
 * keep it in the tree and symlink it from the host. auto = try-guest (like nspawn with -j). The try-
 * variants give up quietly when the tree has no /var/log/journal.
 */
export function linkJournal(root: string, machineId: string, mode: LinkJournal, hostJournalDir: string, owner: Owner): JournalLink {
  const res: JournalLink = { created: [] };
  if (mode === 'no') return res;
  const m = mode === 'auto' ? 'try-guest' : mode;
  const tryOnly = m.startsWith('try-');
  const inTree = safeInside(root, `var/log/journal/${machineId}`);
  const treeJournal = inTree ? path.dirname(inTree) : undefined;
  if (!inTree || !treeJournal || !fs.existsSync(treeJournal)) {
    if (tryOnly) return res;
    throw new Error(`--link-journal=${mode}: ${root} has no /var/log/journal`);
  }
  const hostPath = path.join(hostJournalDir, machineId);
  fs.mkdirSync(hostJournalDir, { recursive: true });
  if (m.endsWith('host')) {
    if (!fs.existsSync(hostPath)) { fs.mkdirSync(hostPath, { mode: 0o2755 }); res.created.push(hostPath); }
    if (!fs.existsSync(inTree)) { fs.mkdirSync(inTree); fs.chownSync(inTree, owner.uid, owner.gid); }
    fs.chownSync(hostPath, owner.uid, owner.gid);
    res.bind = { source: hostPath, target: `/var/log/journal/${machineId}`, readOnly: false };
  } else {
    let st: fs.Stats | undefined;
    try { st = fs.lstatSync(hostPath); } catch { st = undefined; }
    if (st && !st.isSymbolicLink()) {
      if (tryOnly) return res;
      throw new Error(`--link-journal=${mode}: ${hostPath} exists and is not a symlink`);
    }
    if (!fs.existsSync(inTree)) { fs.mkdirSync(inTree, { mode: 0o2755 }); fs.chownSync(inTree, owner.uid, owner.gid); }
    if (!st) { fs.symlinkSync(inTree, hostPath); res.created.push(hostPath); }
  }
  return res;
}
