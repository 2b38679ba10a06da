// Scopes berthd made for machines it no longer holds (a berthd killed between making a scope and saving
// the machine, or a state directory that was lost) are removed by the next berthd on the same state
// directory: empty ones at once, others once their processes have ended. Scopes without berthd's mark,
// or with the mark of another berthd's state directory, are never touched.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { liveProcessProbe, Registry } from '../../../src/server/registry/registry.js';
import { validateRegistration } from '../../../src/server/machine-params.js';
import { detectCgroupLayout } from '../../../src/domain/cgroup-paths.js';
import { MACHINE_SLICE, machineScopeUnit } from '../../../src/domain/unit-names.js';
import { markScope, scopeMaker } from '../../../src/domain/scope-mark.js';
import { berthdScopeMaker } from '../../../src/server/registry/scope.js';
import { waitFor } from '../../helpers/wait.js';

const layout = detectCgroupLayout();
const why = process.getuid?.() !== 0 ? 'needs root (cgroups)' : !layout.primary ? 'no cgroup hierarchy mounted' : undefined;
if (why) console.warn(`leftover scope tests skipped: ${why}`);

const tag = `lft${process.pid}`;
const children: ChildProcess[] = [];
const registries: Registry[] = [];
const runtimes: string[] = [];
const scopeDirs = (name: string) => layout.hierarchies.map((h) => path.join(h.root, MACHINE_SLICE, machineScopeUnit(name)));
const present = (name: string) => scopeDirs(name).some((d) => fs.existsSync(d));

function sleeper(): ChildProcess & { pid: number } {
  const c = spawn('sleep', ['600'], { stdio: 'ignore' });
  children.push(c);
  return c as ChildProcess & { pid: number };
}

function newRuntime(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-leftover-'));
  runtimes.push(d);
  return d;
}

function registry(runtime: string) {
  const logs: string[] = [];
  const log = (obj: object, msg?: string) => logs.push(`${msg ?? ''} ${JSON.stringify(obj)}`);
  const r = new Registry({ runtimeDir: runtime, cgroups: layout, host: false, logger: { info: log, warn: log, error: log, debug() {} } });
  registries.push(r);
  return { r, logs };
}

/** Register with allocateUnit (berth makes the scope), then "crash": close without unregistering and lose the state file. */
function registerAndLoseState(runtime: string, name: string, leader: number): void {
  const { r } = registry(runtime);
  const spec = validateRegistration({ name, class: 'container', leader, allocateUnit: true }, liveProcessProbe);
  if (!spec.ok) throw new Error(JSON.stringify(spec.error));
  const m = r.registerSpec(spec.value, { uid: 0 });
  expect(m.ok).toBe(true);
  r.close();
  fs.rmSync(path.join(runtime, 'systemd', 'machines', name));
  fs.rmSync(path.join(runtime, 'systemd', 'machines', `unit:${machineScopeUnit(name)}`), { force: true });
}

const killed = (c: ChildProcess) =>
  new Promise<void>((resolve) => {
    if (c.exitCode !== null || c.signalCode !== null) return resolve();
    c.once('exit', () => resolve());
    c.kill('SIGKILL');
  });

afterEach(async () => {
  for (const r of registries.splice(0)) r.close();
  await Promise.all(children.splice(0).map(killed));
});

afterAll(() => {
  for (const h of layout.hierarchies) {
    let names: string[] = [];
    try {
      names = fs.readdirSync(path.join(h.root, MACHINE_SLICE));
    } catch {
      /* none */
    }
    for (const n of names) if (n.startsWith(`machine-${tag}`)) fs.rmdirSync(path.join(h.root, MACHINE_SLICE, n));
  }
  for (const d of runtimes) fs.rmSync(d, { recursive: true, force: true });
});

describe.skipIf(why)(`leftover scopes${why ? ` (skipped: ${why})` : ''}`, () => {
  it('marks the scopes berthd makes with its own state directory', () => {
    const runtime = newRuntime();
    const { r } = registry(runtime);
    const c = sleeper();
    const spec = validateRegistration({ name: `${tag}-m`, class: 'container', leader: c.pid, allocateUnit: true }, liveProcessProbe);
    expect(spec.ok && r.registerSpec(spec.value, { uid: 0 }).ok).toBe(true);
    for (const d of scopeDirs(`${tag}-m`)) expect(scopeMaker(d)).toBe(berthdScopeMaker(path.join(runtime, 'systemd', 'machines')));
    expect(r.unregister(`${tag}-m`).ok).toBe(true);
  });

  it('removes an empty leftover at once and a busy one when its processes end; leaves foreign scopes alone', async () => {
    const runtime = newRuntime();
    const empty = sleeper();
    const busy = sleeper();
    registerAndLoseState(runtime, `${tag}-empty`, empty.pid);
    registerAndLoseState(runtime, `${tag}-busy`, busy.pid);
    await killed(empty);
    // A scope another manager made (no mark), and one of a berthd with another state directory.
    for (const d of scopeDirs(`${tag}-foreign`)) fs.mkdirSync(d);
    for (const d of scopeDirs(`${tag}-other`)) {
      fs.mkdirSync(d);
      expect(markScope(d, berthdScopeMaker('/elsewhere/systemd/machines'))).toBe(true);
    }
    // A restored machine's scope is in use, not a leftover.
    const live = sleeper();
    const { r: first } = registry(runtime);
    const spec = validateRegistration({ name: `${tag}-live`, class: 'container', leader: live.pid, allocateUnit: true }, liveProcessProbe);
    expect(spec.ok && first.registerSpec(spec.value, { uid: 0 }).ok).toBe(true);
    first.close();

    const { r, logs } = registry(runtime);
    expect(r.restore().kept).toEqual([`${tag}-live`]);
    const swept = r.sweepLeftoverScopes().filter((p) => p.includes(tag)).sort();
    expect(swept).toEqual([`/${MACHINE_SLICE}/${machineScopeUnit(`${tag}-busy`)}`, `/${MACHINE_SLICE}/${machineScopeUnit(`${tag}-empty`)}`]);
    await waitFor(() => !present(`${tag}-empty`), 'the empty leftover scope to go', 5000);
    expect(present(`${tag}-busy`), 'a leftover with a live process stays').toBe(true);
    const emptyUnit = JSON.stringify(machineScopeUnit(`${tag}-empty`)).slice(1, -1);
    expect(logs.some((l) => l.includes('removing a leftover scope') && l.includes(emptyUnit)), logs.join('\n')).toBe(true);
    await killed(busy);
    await waitFor(() => !present(`${tag}-busy`), 'the busy leftover scope to go once its process ended', 5000);
    expect(present(`${tag}-foreign`), 'a scope without berthd mark').toBe(true);
    expect(present(`${tag}-other`), "a scope of another berthd's state directory").toBe(true);
    expect(present(`${tag}-live`), 'the restored machine keeps its scope').toBe(true);
    expect(r.unregister(`${tag}-live`).ok).toBe(true);
  });
});
