import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseBind, parseSignal, parseSpawnArgs, UsageError } from '../../../src/client/spawn-container-args.js';
import { splitColons } from '../../../src/domain/option-values.js';

describe('berth-spawn arguments', () => {
  it('parses nspawn-style options and stops at the command', () => {
    const a = parseSpawnArgs(['-D', '/srv/ct', '-M', 'web', '-U', '--bind=/a:/b', '--bind-ro', '/c', '-E', 'X=1',
      '--set-credential=tok:s\\x41', '--register=no', '--runtime-dir=/tmp/rt/', '-q', '--uuid=0F4E9C2A3B1D4E5F8A6B7C8D9E0F1A2B',
      '/bin/sh', '-c', 'echo -q'], {}, 1);
    const o = a.options!;
    expect(o.directory).toBe('/srv/ct');
    expect(o.name).toBe('web');
    expect(o.privateUsers).toEqual({ mode: 'pick' });
    expect(o.binds).toEqual([{ source: '/a', target: '/b', readOnly: false }, { source: '/c', target: '/c', readOnly: true }]);
    expect(o.setenv).toEqual([['X', '1']]);
    expect(o.credentials).toEqual([{ id: 'tok', data: Buffer.from('sA') }]);
    expect(o.register).toBe('no');
    expect(o.runtimeDir).toBe('/tmp/rt');
    expect(o.quiet).toBe(true);
    expect(o.uuid).toBe('0f4e9c2a-3b1d-4e5f-8a6b-7c8d9e0f1a2b');
    expect(o.command).toEqual(['/bin/sh', '-c', 'echo -q']);
    expect(o.boot).toBe(false);
    expect(o.notifyReady).toBe(false);
    expect(o.killSignal).toBe(37);
  });
  it('defaults: name from the directory, --boot waits for READY=1, a fresh UUID, /run, register auto', () => {
    const o = parseSpawnArgs(['-bD/var/lib/machines/deb12'], {}, 1).options!;
    expect(o.name).toBe('deb12');
    expect(o.boot).toBe(true);
    expect(o.notifyReady).toBe(true);
    expect(o.uuid).toMatch(/^[0-9a-f-]{36}$/);
    expect(o.runtimeDir).toBe('/run');
    expect(o.register).toBe('auto');
    expect(o.privateUsers).toEqual({ mode: 'no' });
  });
  it('passes sockets on only when LISTEN_PID names this process', () => {
    const env = { LISTEN_FDS: '2', LISTEN_PID: '77', LISTEN_FDNAMES: 'web:admin' };
    expect(parseSpawnArgs(['-D', '/x'], env, 77).options!.listenFds).toEqual([3, 4]);
    expect(parseSpawnArgs(['-D', '/x'], env, 77).options!.listenFdNames).toBe('web:admin');
    expect(parseSpawnArgs(['-D', '/x'], env, 78).options!.listenFds).toEqual([]);
  });
  it('loads credentials from files', () => {
    const f = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'berth-cred-')), 'c');
    fs.writeFileSync(f, 'from-file');
    expect(parseSpawnArgs(['-D', '/x', `--load-credential=c1:${f}`], {}, 1).options!.credentials[0]!.data.toString()).toBe('from-file');
    expect(() => parseSpawnArgs(['-D', '/x', '--load-credential=c1:/nonexistent'], {}, 1)).toThrow(/cannot read/);
    fs.rmSync(path.dirname(f), { recursive: true });
  });
  it('hands --vm over untouched', () => {
    expect(parseSpawnArgs(['--vm', '--linux=/k', '-M', 'v'], {}, 1)).toMatchObject({ vm: true });
    expect(parseSpawnArgs(['-D', '/x', '--', '--vm'], {}, 1).vm).toBe(false);
  });
  it('rejects bad input with messages that say what is wrong', () => {
    expect(() => parseSpawnArgs([], {}, 1)).toThrow(/-D DIR/);
    expect(() => parseSpawnArgs(['-D', '/x', '--frobnicate'], {}, 1)).toThrow(UsageError);
    expect(() => parseSpawnArgs(['-D', '/x', '--private-users=sometimes'], {}, 1)).toThrow(/sometimes/);
    expect(() => parseSpawnArgs(['-D', '/x', '--register=maybe'], {}, 1)).toThrow(/--register/);
    expect(() => parseSpawnArgs(['-D', '/x', '--uuid=nope'], {}, 1)).toThrow(/UUID/);
    expect(() => parseSpawnArgs(['-D', '/x', '--set-credential=a/b:x'], {}, 1)).toThrow(/credential name/);
    expect(() => parseSpawnArgs(['-D', '/x', '--link-journal=sometimes'], {}, 1)).toThrow(/link-journal/);
    expect(() => parseSpawnArgs(['-D', '/x', '--bind=rel:/x'], {}, 1)).toThrow(/absolute/);
    expect(() => parseSpawnArgs(['-D', '/x', '-M'], {}, 1)).toThrow(/needs a value/);
  });
  it('splits bind specs on unescaped colons', () => {
    expect(splitColons('/a\\:b:/c')).toEqual(['/a:b', '/c']);
    expect(parseBind('/src', true)).toEqual({ source: '/src', target: '/src', readOnly: true });
  });
  it('knows signals by name', () => {
    expect(parseSignal('SIGRTMIN+3')).toBe(37);
    expect(parseSignal('TERM')).toBe(15);
    expect(() => parseSignal('SIGNOPE')).toThrow(/unknown signal/);
  });
});
