// The fields systemd-machined 262 added to io.systemd.Machine, as berth reads and stores them: Register's
// controlAddress (a socket path), the deprecated supervisor/supervisorProcessId (checked, then dropped),
// and the state file keys 262 writes for them (SUPERVISOR, SUPERVISOR_PIDFDID, CONTROL_ADDRESS). The
// vectors are what the real machined 262 answered (test/interop/differential/machine-api-262.test.ts
// compares the same calls live).
import { describe, expect, it } from 'vitest';
import { validateRegistration } from '../../../src/server/machine-params.js';
import type { Machine, ProcessProbe } from '../../../src/server/registry/machine.js';
import { formatStateFile, parseStateFile } from '../../../src/server/registry/state.js';

const LIVE = 4242;
const probe: ProcessProbe = { exists: (pid) => pid === LIVE };
const reg = (extra: Record<string, unknown>) => validateRegistration({ name: 'v262', class: 'container', leader: LIVE, ...extra }, probe);
const bad = (parameter: string) => ({ ok: false, error: { invalidParameter: parameter } });

describe('Register, 262 fields', () => {
  it('takes controlAddress as an absolute, normalized path', () => {
    for (const a of ['/abs/path', '/a/', '/', '/a"b', '/a b', '/a\nb', '/é', `/${'a'.repeat(255)}`, `/x/${'a'.repeat(200)}/${'a'.repeat(200)}`]) {
      expect(reg({ controlAddress: a }), a).toMatchObject({ ok: true, value: { controlAddress: a } });
    }
    for (const a of ['foo', '', 'unix:rel', 'unix:/run/x.sock', 'unix:@abstract', 'exec:/bin/true', 'a/b', './a', '/a/../b', '/a/./b', '/a//b', `/${'a'.repeat(256)}`, `/${'a/'.repeat(2100)}`, 5, null]) {
      expect(reg({ controlAddress: a }), String(a)).toEqual(bad('controlAddress'));
    }
  });

  it('checks supervisor and supervisorProcessId and drops them', () => {
    for (const v of ['abc', '', '5', '0x10', null, -1, 0, 9, 2 ** 53, -(2 ** 63)]) {
      const r = reg({ supervisor: v });
      expect(r, JSON.stringify(v)).toMatchObject({ ok: true });
      expect((r as { value: object }).value).not.toHaveProperty('supervisor');
    }
    for (const v of [true, {}, [], 1.5, 2 ** 64]) expect(reg({ supervisor: v }), JSON.stringify(v)).toEqual(bad('supervisor'));
    for (const v of [{ pid: 1 }, { pid: -1 }, { pid: 0 }, { pid: 'abc' }, { pid: '7' }, { pid: 4000000 }, { pid: 2, pidfdId: 'x' }, { pid: 2, pidfdId: null }, { pid: 2, bootId: 'xyz' }, null]) {
      expect(reg({ supervisorProcessId: v }), JSON.stringify(v)).toMatchObject({ ok: true });
    }
    for (const v of [{}, { pid: null }, { pid: 1.5 }, { pid: true }, { pid: 2, foo: 1 }, { pidfdId: 5 }, 'x', [], 5]) {
      expect(reg({ supervisorProcessId: v }), JSON.stringify(v)).toEqual(bad('supervisorProcessId'));
    }
  });

  it('still refuses class host after every other field', () => {
    expect(validateRegistration({ name: 'v262', class: 'host', controlAddress: 'x', leader: LIVE }, probe)).toEqual(bad('controlAddress'));
    expect(validateRegistration({ name: 'v262', class: 'host', leader: LIVE }, probe)).toEqual(bad('class'));
  });
});

const machine: Machine = {
  name: 'v262',
  class: 'vm',
  leader: { pid: 15614, pidfdId: 145465, starttime: 3 },
  supervisor: { pid: 15618, pidfdId: 145469, starttime: 4 },
  ifIndices: [],
  sshPrivateKeyPath: '/k',
  controlAddress: '/run/x/z.sock',
  unit: 'machine-v262.scope',
  ownsScope: false,
  timestamp: { realtime: 1796603227107626, monotonic: 7351763368 },
  registeredBy: 0,
  allocateUnit: false,
};

describe('state file, 262 keys', () => {
  it('writes SUPERVISOR, SUPERVISOR_PIDFDID, VSOCK_CID and CONTROL_ADDRESS where 262 does, and reads them back', () => {
    const text = formatStateFile(machine);
    expect(text).toBe(
      [
        '# This is private data. Do not parse.', 'NAME=v262', 'UID=0', 'SCOPE=machine-v262.scope', 'LEADER=15614', 'LEADER_PIDFDID=145465',
        'SUPERVISOR=15618', 'SUPERVISOR_PIDFDID=145469', 'CLASS=vm', 'REALTIME=1796603227107626', 'MONOTONIC=7351763368',
        'VSOCK_CID=4294967295', 'SSH_PRIVATE_KEY_PATH=/k', 'CONTROL_ADDRESS=/run/x/z.sock', '',
      ].join('\n'),
    );
    expect(parseStateFile(text)).toMatchObject({
      ok: true,
      warnings: [],
      record: { supervisor: { pid: 15618, pidfdId: 145469 }, controlAddress: '/run/x/z.sock', uid: 0 },
    });
  });

  it('quotes CONTROL_ADDRESS as 262 does (observed) and reads 262\'s quoting back, a newline included', () => {
    const odd = '/a b"c\ndé\\e';
    const text = formatStateFile({ ...machine, controlAddress: odd });
    expect(text).toContain('CONTROL_ADDRESS="/a b\\"c\ndé\\\\e"\n');
    expect(parseStateFile(text)).toMatchObject({ ok: true, warnings: [], record: { controlAddress: odd, sshPrivateKeyPath: '/k' } });
    // As machined 262 wrote it, with lines after it.
    const theirs = 'NAME=x\nCONTROL_ADDRESS="/a b\\"c\ndé\\\\e"\nCLASS=vm\nSSH_PRIVATE_KEY_PATH="/k e\\"y"\n';
    expect(parseStateFile(theirs)).toMatchObject({ ok: true, warnings: [], record: { controlAddress: odd, class: 'vm', sshPrivateKeyPath: '/k e"y' } });
  });
});
