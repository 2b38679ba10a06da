/**
 * What `berthctl install` and `berthctl uninstall` would do, decided before anything is touched: the files
 * berth puts on the host (wrappers on the PATH, socket and service units, the D-Bus policy and activation
 * files), what becomes of systemd-machined, and the manifest that lets uninstall put everything back.
 * Everything here reads the host (under a root that tests move) but changes nothing; install-apply.ts acts.
 */
import fs from 'node:fs';
import path from 'node:path';

/** One unit of machined as systemctl describes it before berth takes its place. */
export interface UnitState {
  unit: string;
  /** loaded, masked, not-found … */
  loadState: string;
  /** enabled, disabled, static, masked, '' … */
  unitFileState: string;
  /** active, inactive, failed … */
  activeState: string;
}

/** What the plan needs to know about systemd (a fake in the unit tests). */
export interface SystemdView {
  /** systemd runs as PID 1 (ROOT/run/systemd/system exists) */
  pid1: boolean;
  /** the unit's state, or undefined when systemd knows no such unit */
  state(unit: string): UnitState | undefined;
}

export type Step =
  | { kind: 'mkdir'; path: string }
  | { kind: 'write'; path: string; content: string; mode: number; replaces?: string }
  | { kind: 'symlink'; path: string; target: string }
  | { kind: 'remove'; path: string }
  | { kind: 'rmdir'; path: string }
  | { kind: 'systemctl'; args: string[]; undo?: string[] };

/** Written at install (ROOT/var/lib/berth/install.json), read by uninstall. */
export interface Manifest {
  format: 1;
  prefix: string;
  /** the build the wrappers run */
  source: string;
  systemd: boolean;
  /** every file and link berth put there, with the original it replaced (saved in backups/) */
  files: { path: string; backup?: string; backupMode?: number }[];
  /** directories install made, deepest last */
  dirs: string[];
  /** berth's units enabled with systemctl enable --now */
  enabled: string[];
  /** machined's units before install (only those systemd knows) */
  machined: UnitState[];
}

export interface InstallInput {
  root: string;
  prefix: string;
  /** the build: a directory with dist/bin/berthd.cjs and units/ */
  source: string;
  node: string;
  force: boolean;
  systemd: SystemdView;
}

export const MACHINED_UNITS = ['systemd-machined.socket', 'systemd-machined.service'] as const;
export const BERTH_SOCKETS = ['berthd.socket', 'berthd-userdb.socket', 'berthd-resolve-hook.socket'] as const;
export const MANIFEST_DIR = '/var/lib/berth';
export const MANIFEST = `${MANIFEST_DIR}/install.json`;
const PROGRAMS: [string, string][] = [
  ['berthd', 'dist/bin/berthd.cjs'],
  ['berthctl', 'dist/bin/berthctl.mjs'],
  ['berth-spawn', 'dist/bin/berth-spawn.mjs'],
  ['berth-activate', 'dist/src/server/berth-activate.js'],
];

export class InstallRefused extends Error {}

export const under = (root: string, p: string): string => (root === '/' ? p : path.join(root, p));

export function readManifest(root: string): Manifest | undefined {
  let text: string;
  try {
    text = fs.readFileSync(under(root, MANIFEST), 'utf8');
  } catch {
    return undefined;
  }
  const m = JSON.parse(text) as Manifest;
  if (m.format !== 1) throw new InstallRefused(`${MANIFEST} has an unknown format; remove berth by hand`);
  return m;
}

/** Machines a running machined has registered (its state files, not the unit: links). */
export function registeredMachines(root: string): string[] {
  try {
    return fs.readdirSync(under(root, '/run/systemd/machines')).filter((n) => !n.startsWith('unit:') && !n.startsWith('.')).sort();
  } catch {
    return [];
  }
}

/** The files install writes, by absolute path on the host (not under root), with their content. */
export function plannedFiles(i: Pick<InstallInput, 'prefix' | 'source' | 'node' | 'systemd'>): { path: string; content: string; mode: number; link?: string }[] {
  const bin = path.join(i.prefix, 'bin');
  const berthd = path.join(bin, 'berthd');
  const files: { path: string; content: string; mode: number; link?: string }[] = PROGRAMS.map(([name, rel]) => ({
    path: path.join(bin, name),
    content: `#!/bin/sh\n# ${name} of berth, installed by berthctl install (berthctl uninstall removes it)\n` +
      `exec ${i.node}${name === 'berthd' ? ' --max-semi-space-size=1' : ''} ${path.join(i.source, rel)} "$@"\n`,
    mode: 0o755,
  }));
  // Units name the wrapper by its installed path.
  const unit = (f: string): string => fs.readFileSync(path.join(i.source, 'units', f), 'utf8').replaceAll('/usr/local/bin/berthd', berthd);
  if (i.systemd.pid1) {
    for (const u of [...BERTH_SOCKETS, 'berthd.service']) {
      files.push({ path: `/etc/systemd/system/${u}`, content: unit(u), mode: 0o644 });
    }
    // dbus-daemon may find machined's activation file before berth's: its SystemdService= names this
    // alias, which then starts berthd too.
    files.push({ path: '/etc/systemd/system/dbus-org.freedesktop.machine1.service', content: '', mode: 0o777, link: 'berthd.service' });
  }
  files.push({ path: '/etc/dbus-1/system.d/org.freedesktop.machine1.conf', content: unit('dbus/org.freedesktop.machine1.conf'), mode: 0o644 });
  files.push({
    path: path.join(i.prefix, 'share/dbus-1/system-services/org.freedesktop.machine1.service'),
    content: unit('dbus/org.freedesktop.machine1.service'),
    mode: 0o644,
  });
  return files;
}

/** The nearest existing ancestor of p (under root) must be a writable directory. */
function checkWritable(root: string, p: string): void {
  let d = path.dirname(under(root, p));
  for (;;) {
    let st: fs.Stats | undefined;
    try {
      st = fs.statSync(d);
    } catch {
      /* missing: look higher */
    }
    if (st) {
      if (!st.isDirectory()) throw new InstallRefused(`cannot install ${p}: ${d} is not a directory; nothing was changed`);
      try {
        fs.accessSync(d, fs.constants.W_OK);
      } catch (e) {
        throw new InstallRefused(`cannot install ${p}: ${d} is not writable (${(e as NodeJS.ErrnoException).code}); nothing was changed`);
      }
      return;
    }
    const up = path.dirname(d);
    if (up === d) return;
    d = up;
  }
}

function readIfAny(p: string): { kind: 'none' } | { kind: 'file'; content: string } | { kind: 'link'; target: string } | { kind: 'other' } {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(p);
  } catch {
    return { kind: 'none' };
  }
  if (st.isSymbolicLink()) return { kind: 'link', target: fs.readlinkSync(p) };
  if (st.isFile()) return { kind: 'file', content: fs.readFileSync(p, 'utf8') };
  return { kind: 'other' };
}

/** Directories (host paths) that must be made for p, outermost first. */
function missingDirs(root: string, p: string, seen: Set<string>): string[] {
  const out: string[] = [];
  for (let d = path.dirname(p); d !== '/' && !fs.existsSync(under(root, d)); d = path.dirname(d)) {
    if (!seen.has(d)) out.unshift(d);
  }
  for (const d of out) seen.add(d);
  return out;
}

export interface InstallPlan {
  steps: Step[];
  manifest: Manifest;
  /** machines of machined that berthd takes over (--force) */
  carried: string[];
  alreadyInstalled: boolean;
}

export function planInstall(i: InstallInput): InstallPlan {
  const prior = readManifest(i.root);
  if (prior && path.resolve(prior.prefix) !== path.resolve(i.prefix)) {
    throw new InstallRefused(`berth is installed with --prefix ${prior.prefix} (${MANIFEST}); run 'berthctl uninstall' first; nothing was changed`);
  }
  for (const [, rel] of PROGRAMS) {
    if (!fs.existsSync(path.join(i.source, rel))) throw new InstallRefused(`${path.join(i.source, rel)} is missing: run 'npm run build' first; nothing was changed`);
  }
  const files = plannedFiles(i);
  const steps: Step[] = [];
  const seen = new Set<string>();
  const dirs: string[] = [...(prior?.dirs ?? [])];
  const recorded = new Map((prior?.files ?? []).map((f) => [f.path, f]));
  const manifestFiles: Manifest['files'] = [];
  for (const f of [...files, { path: MANIFEST, content: '', mode: 0o644 }]) {
    checkWritable(i.root, f.path);
    for (const d of missingDirs(i.root, f.path, seen)) {
      steps.push({ kind: 'mkdir', path: d });
      dirs.push(d);
    }
    if (f.path === MANIFEST) continue;
    const now = readIfAny(under(i.root, f.path));
    const mine = recorded.get(f.path);
    const entry: Manifest['files'][number] = { ...(mine ?? {}), path: f.path };
    manifestFiles.push(entry);
    if ('link' in f && f.link) {
      if (now.kind === 'link' && now.target === f.link) continue;
    } else if (now.kind === 'file' && now.content === f.content) continue;
    if (now.kind !== 'none' && !mine) {
      if (!i.force) throw new InstallRefused(`${f.path} exists and is not berth's (--force replaces it, uninstall puts it back); nothing was changed`);
      if (now.kind === 'other') throw new InstallRefused(`${f.path} exists and is not a file; nothing was changed`);
      entry.backup = `${MANIFEST_DIR}/backups${f.path}`;
      entry.backupMode = fs.lstatSync(under(i.root, f.path)).mode & 0o7777;
      for (const d of missingDirs(i.root, entry.backup, seen)) {
        steps.push({ kind: 'mkdir', path: d });
        dirs.push(d);
      }
      steps.push({ kind: 'write', path: entry.backup, content: now.kind === 'file' ? now.content : '', mode: 0o600, replaces: f.path });
    }
    if ('link' in f && f.link) {
      if (now.kind !== 'none') steps.push({ kind: 'remove', path: f.path });
      steps.push({ kind: 'symlink', path: f.path, target: f.link });
    } else steps.push({ kind: 'write', path: f.path, content: f.content, mode: f.mode });
  }

  // machined: recorded once, at the first install, so that a second one does not take berth's doing for the original.
  const machined = prior?.machined ?? MACHINED_UNITS.map((u) => i.systemd.state(u)).filter((s): s is UnitState => s !== undefined);
  const carried: string[] = [];
  if (i.systemd.pid1) {
    const running = machined.some((s) => s.activeState === 'active' || s.activeState === 'activating');
    const machines = registeredMachines(i.root);
    if (!prior && running && machines.length) {
      if (!i.force) {
        throw new InstallRefused(`systemd-machined is running with machines registered: ${machines.join(', ')}; ` +
          `stop them, or pass --force to carry them over to berthd (from /run/systemd/machines); nothing was changed`);
      }
      carried.push(...machines);
    }
    const wrote = steps.some((s) => s.kind === 'write' || s.kind === 'symlink');
    if (wrote) steps.push({ kind: 'systemctl', args: ['daemon-reload'], undo: ['daemon-reload'] });
    // dbus-daemon reads the new policy and activation file now, not whenever its file watch fires.
    if (wrote && busRuns(i.systemd)) steps.push({ kind: 'systemctl', args: ['reload', 'dbus.service'], undo: ['reload', 'dbus.service'] });
    for (const s of MACHINED_UNITS.map((u) => i.systemd.state(u)).filter((s): s is UnitState => s !== undefined)) {
      if (s.activeState === 'active' || s.activeState === 'activating') {
        steps.push({ kind: 'systemctl', args: ['stop', s.unit], undo: ['start', s.unit] });
      }
      if (s.loadState !== 'masked') {
        steps.push({ kind: 'systemctl', args: ['mask', s.unit], undo: ['unmask', s.unit] });
      }
    }
    for (const u of BERTH_SOCKETS) {
      const s = i.systemd.state(u);
      if (wrote || !s || s.unitFileState !== 'enabled' || s.activeState !== 'active') {
        steps.push({ kind: 'systemctl', args: ['enable', '--now', u], undo: ['disable', '--now', u] });
      }
    }
    // berthd restores the carried machines from machined's state files at its first start.
    if (carried.length) steps.push({ kind: 'systemctl', args: ['start', 'berthd.service'], undo: ['stop', 'berthd.service'] });
  }
  const manifest: Manifest = {
    format: 1,
    prefix: i.prefix,
    source: i.source,
    systemd: i.systemd.pid1,
    files: manifestFiles,
    dirs,
    enabled: i.systemd.pid1 ? [...BERTH_SOCKETS] : [],
    machined,
  };
  return { steps, manifest, carried, alreadyInstalled: !!prior && steps.length === 0 };
}

/** Uninstall: berth's units off, its files gone (originals back), machined as it was, then the manifest. */
export function planUninstall(root: string, systemd: SystemdView): { steps: Step[]; manifest: Manifest } {
  const m = readManifest(root);
  if (!m) throw new InstallRefused(`berth is not installed here (no ${MANIFEST}); nothing was changed`);
  const steps: Step[] = [];
  if (systemd.pid1) {
    for (const u of [...m.enabled, 'berthd.service']) {
      if (systemd.state(u)) steps.push({ kind: 'systemctl', args: ['disable', '--now', u] });
    }
  }
  for (const f of [...m.files].reverse()) {
    if (fs.existsSync(under(root, f.path)) || isLink(under(root, f.path))) steps.push({ kind: 'remove', path: f.path });
    if (f.backup) {
      const content = fs.readFileSync(under(root, f.backup), 'utf8');
      steps.push({ kind: 'write', path: f.path, content, mode: f.backupMode ?? 0o644 });
      steps.push({ kind: 'remove', path: f.backup });
    }
  }
  // Every file and directory of berth goes before machined comes back, so neither systemd nor dbus-daemon
  // sees a half-removed berth while machined starts.
  steps.push({ kind: 'remove', path: MANIFEST });
  for (const d of [...m.dirs].reverse()) steps.push({ kind: 'rmdir', path: d });
  if (systemd.pid1) {
    steps.push({ kind: 'systemctl', args: ['daemon-reload'] });
    // dbus-daemon forgets berth's policy and activation file before machined asks for the name.
    if (busRuns(systemd)) steps.push({ kind: 'systemctl', args: ['reload', 'dbus.service'] });
    for (const was of m.machined) {
      const now = systemd.state(was.unit);
      if (was.loadState !== 'masked' && now?.loadState === 'masked') steps.push({ kind: 'systemctl', args: ['unmask', was.unit] });
      if (was.unitFileState === 'enabled') steps.push({ kind: 'systemctl', args: ['enable', was.unit] });
    }
    steps.push({ kind: 'systemctl', args: ['daemon-reload'] });
    for (const was of m.machined) {
      if (was.activeState === 'active') steps.push({ kind: 'systemctl', args: ['start', was.unit] });
    }
  }
  return { steps, manifest: m };
}

function busRuns(systemd: SystemdView): boolean {
  return systemd.state('dbus.service')?.activeState === 'active';
}

function isLink(p: string): boolean {
  try {
    return fs.lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

/** One line per step, as the verb prints it ("would …" in a dry run). */
export function describeStep(s: Step): string {
  switch (s.kind) {
    case 'mkdir': return `create directory ${s.path}`;
    case 'write': return s.replaces ? `save the original ${s.replaces} as ${s.path}` : `write ${s.path}`;
    case 'symlink': return `link ${s.path} -> ${s.target}`;
    case 'remove': return `remove ${s.path}`;
    case 'rmdir': return `remove directory ${s.path} (if empty)`;
    case 'systemctl': return `systemctl ${s.args.join(' ')}`;
  }
}
