// berthctl install/uninstall's plan and its application, in a temporary root with a fake systemd: what is
// written, what becomes of machined, that a second run changes nothing, that uninstall leaves the root as
// it found it, and that bad input (machines registered, foreign files, unwritable prefix, a failing step)
// changes nothing.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InstallRefused, MANIFEST, planInstall, planUninstall, type Manifest, type SystemdView, type UnitState } from '../../src/client/install-plan.js';
import { applySteps, type Runner } from '../../src/client/install-apply.js';

const source = path.resolve(import.meta.dirname, '../..');
let root: string;

/** A systemd that knows units and acts on stop/start/mask/unmask/enable/disable like systemctl. */
function fakeSystemd(pid1: boolean, units: UnitState[], failOn?: string): SystemdView & Runner & { calls: string[]; units: Map<string, UnitState> } {
  const map = new Map(units.map((u) => [u.unit, { ...u }]));
  const calls: string[] = [];
  return {
    pid1,
    units: map,
    calls,
    state: (u) => (map.has(u) ? { ...map.get(u)! } : undefined),
    systemctl(args) {
      calls.push(args.join(' '));
      if (failOn && args.join(' ') === failOn) throw new Error(`systemctl ${failOn}: failed`);
      const [verb, ...rest] = args;
      const names = rest.filter((a) => !a.startsWith('--'));
      const now = rest.includes('--now');
      for (const n of names) {
        const u = map.get(n) ?? { unit: n, loadState: 'loaded', unitFileState: 'disabled', activeState: 'inactive' };
        map.set(n, u);
        if (verb === 'stop') u.activeState = 'inactive';
        if (verb === 'start') u.activeState = 'active';
        if (verb === 'mask') { u.loadState = 'masked'; u.unitFileState = 'masked'; }
        if (verb === 'unmask') { u.loadState = 'loaded'; u.unitFileState = 'static'; }
        if (verb === 'enable') { u.unitFileState = 'enabled'; if (now) u.activeState = 'active'; }
        if (verb === 'disable') { u.unitFileState = 'disabled'; if (now) u.activeState = 'inactive'; }
      }
    },
  };
}

/** Every path under root with its content or link target, to compare before and after. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      const rel = path.relative(dir, p);
      if (e.isSymbolicLink()) out[rel] = `-> ${fs.readlinkSync(p)}`;
      else if (e.isDirectory()) { out[rel] = 'dir'; walk(p); }
      else out[rel] = fs.readFileSync(p, 'utf8');
    }
  };
  walk(dir);
  return out;
}

const machined = (active: boolean): UnitState[] => [
  { unit: 'systemd-machined.service', loadState: 'loaded', unitFileState: 'static', activeState: active ? 'active' : 'inactive' },
];

function install(sd: ReturnType<typeof fakeSystemd>, o: { prefix?: string; force?: boolean } = {}) {
  const plan = planInstall({ root, prefix: o.prefix ?? '/usr/local', source, node: '/usr/bin/node', force: o.force ?? false, systemd: sd });
  const lines: string[] = [];
  if (!plan.alreadyInstalled) {
    applySteps(root, [...plan.steps, { kind: 'write', path: MANIFEST, content: JSON.stringify(plan.manifest), mode: 0o644 }], sd, (l) => lines.push(l));
  }
  return { plan, lines };
}

beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-install-'));
  for (const d of ['etc/systemd/system', 'usr/local', 'var/lib', 'run']) fs.mkdirSync(path.join(root, d), { recursive: true });
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

describe('berthctl install', () => {
  it('without systemd installs wrappers and D-Bus files, no units, and uninstall leaves the root as it was', () => {
    const before = snapshot(root);
    const sd = fakeSystemd(false, []);
    install(sd);
    const wrapper = fs.readFileSync(path.join(root, 'usr/local/bin/berthd'), 'utf8');
    expect(wrapper).toContain(`exec /usr/bin/node --max-semi-space-size=1 ${source}/dist/bin/berthd.cjs "$@"`);
    expect(fs.statSync(path.join(root, 'usr/local/bin/berth-activate')).mode & 0o777).toBe(0o755);
    expect(fs.existsSync(path.join(root, 'etc/systemd/system/berthd.socket'))).toBe(false);
    expect(fs.readFileSync(path.join(root, 'usr/local/share/dbus-1/system-services/org.freedesktop.machine1.service'), 'utf8'))
      .toContain('Exec=/usr/local/bin/berthd');
    expect(sd.calls).toEqual([]);
    expect(install(sd).plan.alreadyInstalled).toBe(true);
    applySteps(root, planUninstall(root, sd).steps, sd, () => undefined);
    expect(snapshot(root)).toEqual(before);
  });

  it('with systemd stops and masks machined, enables the sockets, changes nothing the second time, and uninstall gives machined back', () => {
    const before = snapshot(root);
    const sd = fakeSystemd(true, machined(true));
    const { lines } = install(sd, { prefix: '/opt/berth' });
    expect(fs.readFileSync(path.join(root, 'etc/systemd/system/berthd.service'), 'utf8')).toContain('ExecStart=/opt/berth/bin/berthd --idle-exit 60');
    expect(fs.readlinkSync(path.join(root, 'etc/systemd/system/dbus-org.freedesktop.machine1.service'))).toBe('berthd.service');
    expect(sd.calls).toEqual(['daemon-reload', 'stop systemd-machined.service', 'mask systemd-machined.service',
      'enable --now berthd.socket', 'enable --now berthd-userdb.socket', 'enable --now berthd-resolve-hook.socket']);
    expect(lines).toContain('systemctl mask systemd-machined.service');
    const m = JSON.parse(fs.readFileSync(path.join(root, MANIFEST), 'utf8')) as Manifest;
    expect(m.machined).toEqual(machined(true));

    sd.calls.length = 0;
    expect(install(sd, { prefix: '/opt/berth' }).plan.alreadyInstalled).toBe(true);
    expect(sd.calls).toEqual([]);
    expect(() => install(sd)).toThrow(/installed with --prefix \/opt\/berth/);

    applySteps(root, planUninstall(root, sd).steps, sd, () => undefined);
    expect(sd.state('systemd-machined.service')).toEqual(machined(true)[0]);
    expect(snapshot(root)).toEqual(before);
  });

  it('refuses over a machined with machines registered, naming them, and carries them over with --force', () => {
    fs.mkdirSync(path.join(root, 'run/systemd/machines'), { recursive: true });
    for (const n of ['web', 'db', 'unit:machine-web.scope']) fs.writeFileSync(path.join(root, 'run/systemd/machines', n), 'NAME=x\n');
    const before = snapshot(root);
    const sd = fakeSystemd(true, machined(true));
    expect(() => install(sd)).toThrow(/machines registered: db, web;.*--force/);
    expect(snapshot(root)).toEqual(before);
    expect(sd.calls).toEqual([]);
    const { plan } = install(sd, { force: true });
    expect(plan.carried).toEqual(['db', 'web']);
    expect(sd.calls.at(-1)).toBe('start berthd.service');
  });

  it('refuses a file that is not berth\'s, and with --force keeps the original for uninstall', () => {
    fs.mkdirSync(path.join(root, 'usr/local/bin'));
    fs.writeFileSync(path.join(root, 'usr/local/bin/berthd'), '#!/bin/sh\necho old\n', { mode: 0o750 });
    const before = snapshot(root);
    const sd = fakeSystemd(false, []);
    expect(() => install(sd)).toThrow(/usr\/local\/bin\/berthd exists and is not berth's/);
    expect(snapshot(root)).toEqual(before);
    install(sd, { force: true });
    expect(fs.readFileSync(path.join(root, 'usr/local/bin/berthd'), 'utf8')).toContain('dist/bin/berthd.cjs');
    applySteps(root, planUninstall(root, sd).steps, sd, () => undefined);
    expect(snapshot(root)).toEqual(before);
    expect(fs.statSync(path.join(root, 'usr/local/bin/berthd')).mode & 0o777).toBe(0o750);
  });

  it('refuses an unwritable prefix and an uninstall without install, changing nothing', () => {
    fs.writeFileSync(path.join(root, 'usr/local/notadir'), '');
    const before = snapshot(root);
    const sd = fakeSystemd(false, []);
    expect(() => install(sd, { prefix: '/usr/local/notadir' })).toThrow(InstallRefused);
    expect(() => install(sd, { prefix: '/usr/local/notadir' })).toThrow(/is not a directory; nothing was changed/);
    expect(() => planUninstall(root, sd)).toThrow(/not installed here/);
    expect(snapshot(root)).toEqual(before);
  });

  it('undoes every step done when one fails', () => {
    const before = snapshot(root);
    const sd = fakeSystemd(true, machined(true), 'enable --now berthd-userdb.socket');
    expect(() => install(sd)).toThrow(/enable --now berthd-userdb.socket: failed; the steps done so far were undone/);
    expect(snapshot(root)).toEqual(before);
    expect(sd.state('systemd-machined.service')).toMatchObject({ loadState: 'loaded', activeState: 'active' });
    expect(sd.state('berthd.socket')).toMatchObject({ unitFileState: 'disabled', activeState: 'inactive' });
  });
});
