/**
 * One table of machine names, run through every place that takes one: berthd's Register and lookups (the
 * validation its Varlink handlers call), berth-spawn's shipped bundle for containers and VMs, the launch
 * service and its .berth loader, and berthctl's bundle. Each must accept and refuse exactly the same names,
 * the programs with the very same message, and berthctl before it talks to anyone.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { validateLookup, validateRegistration } from '../../src/server/machine-params.js';
import { liveProcessProbe, type Registry } from '../../src/server/registry/registry.js';
import { ConfigError, parseConfig } from '../../src/server/launch/config.js';
import { LaunchError, LaunchService as MachineLauncher } from '../../src/server/launch/launch-service.js';
import { machineNameRefusal } from '../../src/domain/machine-name.js';

const repo = path.resolve(import.meta.dirname, '../..');
const SPAWN = path.join(repo, 'dist/bin/berth-spawn.mjs');
const BERTHCTL = path.join(repo, 'dist/bin/berthctl.mjs');
const missing = [SPAWN, BERTHCTL].find((f) => !fs.existsSync(f));
if (missing) console.warn(`skipping the bundle checks: ${missing} is missing (run 'npm run build')`);

/** [name, valid to register/start, valid to look up]. Expectations are written out, not computed by the rule. */
const NAMES: [string, boolean, boolean][] = [
  ['web', true, true],
  ['a.b', true, true],
  ['x-1', true, true],
  ['A9', true, true],
  ['a--b', true, true],
  ['x'.repeat(64), true, true],
  ['my_vm', false, false],
  ['-a', false, false],
  ['a-', false, false],
  ['a..b', false, false],
  ['.a', false, false],
  ['a.', false, false],
  ['a.-b', false, false],
  ['x'.repeat(65), false, false],
  ['', false, false],
  ['.host', false, true],
  ['münchen', false, false],
  ['a b', false, false],
  ['a/b', false, false],
];

const runtime = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-names-'));
afterAll(() => fs.rmSync(runtime, { recursive: true, force: true }));
const noRegistry = `unix:${path.join(runtime, 'nothing-listens-here')}`;

const node = (file: string, args: string[]) => execa(process.execPath, [file, ...args], { reject: false, all: true, stdin: 'ignore', timeout: 30_000 });

/** Runs `f` over the table a few at a time (two cores, other agents on them). */
async function overNames<T>(f: (name: string) => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < NAMES.length; i += 4) out.push(...(await Promise.all(NAMES.slice(i, i + 4).map(([n]) => f(n)))));
  return out;
}

describe('one rule for machine names, everywhere', () => {
  it('berthd: Register refuses exactly the invalid names (InvalidParameter name), lookups also take .host', () => {
    for (const [name, register, lookup] of NAMES) {
      const r = validateRegistration({ name, class: 'container', leader: process.pid }, liveProcessProbe);
      expect(r.ok ? 'accepted' : r.error, JSON.stringify(name)).toEqual(register ? 'accepted' : { invalidParameter: 'name' });
      const l = validateLookup({ name });
      expect(l.ok ? 'accepted' : l.error, JSON.stringify(name)).toEqual(lookup ? 'accepted' : { invalidParameter: 'name' });
    }
  });

  it('the .berth loader and the launch service refuse them with the same message', () => {
    const launcher = new MachineLauncher({} as Registry, { runtimeDir: runtime, configDirectories: [runtime] });
    for (const [name, valid] of NAMES) {
      const file = path.join(runtime, `${name}.berth`);
      let loaded: string;
      try {
        parseConfig(name, file, '[Spawn]\nDirectory=/srv/x\n');
        loaded = 'accepted';
      } catch (e) {
        expect(e).toBeInstanceOf(ConfigError);
        loaded = (e as ConfigError).reason;
      }
      expect(loaded, JSON.stringify(name)).toBe(valid ? 'accepted' : machineNameRefusal(name));
      let started: string;
      try {
        launcher.config(name);
        started = 'found';
      } catch (e) {
        expect(e).toBeInstanceOf(LaunchError);
        started = (e as LaunchError).message.startsWith('no ') ? 'accepted' : (e as LaunchError).message;
      }
      expect(started, JSON.stringify(name)).toBe(valid ? 'accepted' : machineNameRefusal(name));
    }
  });

  it.skipIf(missing)('berth-spawn (containers and VMs) refuses them at once, with the same message', async () => {
    // --help makes a valid command line stop before anything is launched; a bad name is refused before that.
    const results = await overNames(async (name) => ({
      container: await node(SPAWN, ['-D', '/srv/ct', `--machine=${name}`, '--help']),
      vm: await node(SPAWN, ['--vm', '--linux=/k', `--machine=${name}`, '--help']),
    }));
    NAMES.forEach(([name, valid], i) => {
      for (const [kind, r] of Object.entries(results[i]!)) {
        const what = `${kind} ${JSON.stringify(name)}`;
        if (valid) expect(r.exitCode, `${what}: ${r.all}`).toBe(0);
        else {
          expect(r.exitCode, what).toBe(1);
          expect(r.all, what).toBe(`berth-spawn: ${machineNameRefusal(name)}`);
        }
      }
    });
  });

  it.skipIf(missing)('berthctl refuses them with exit code 2 before it connects, with the same message', async () => {
    // `--` so that a name like `-a` is taken as a name, not an option.
    const results = await overNames(async (name) => ({
      register: await node(BERTHCTL, ['--address', noRegistry, 'register', '--leader', String(process.pid), '--', name]),
      terminate: await node(BERTHCTL, ['--address', noRegistry, 'terminate', '--', name]),
      start: await node(BERTHCTL, ['--address', noRegistry, 'start', '--', name]),
    }));
    NAMES.forEach(([name, register, lookup], i) => {
      for (const [verb, r] of Object.entries(results[i]!)) {
        const what = `${verb} ${JSON.stringify(name)}`;
        const valid = verb === 'terminate' ? lookup : register;
        if (valid) {
          // Past the name check: it tried the (absent) registry.
          expect(r.exitCode, `${what}: ${r.all}`).toBe(1);
          expect(r.all, what).toMatch(/^berthd is not running/);
        } else {
          expect(r.exitCode, what).toBe(2);
          expect(r.all, what).toBe(machineNameRefusal(name));
        }
      }
    });
  });
});
