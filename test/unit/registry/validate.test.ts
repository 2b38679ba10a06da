// Register/lookup/Kill parameter checks. Every expectation below was observed on the real systemd-machined 257
// (varlinkctl call … io.systemd.Machine.Register) on Debian 12, 2026-11-23.
import { describe, expect, it } from 'vitest';
import { isValidHostname } from '../../../src/domain/machine-name.js';
import { parseId128 } from '../../../src/domain/id128.js';
import { parseKillWhom, validateKill, validateLookup, validateRegistration } from '../../../src/server/machine-params.js';
import type { ProcessProbe } from '../../../src/server/registry/machine.js';

const LIVE = 4242;
const probe: ProcessProbe = {
  exists: (pid) => pid === LIVE || pid === 4343,
  pidfdId: (pid) => (pid === LIVE ? 4243 : undefined),
  bootId: () => '3b1d672845f64b9ea153b9ec7963cf9c',
};

/** Register with `extra` between a valid head and `leader: 0`: if `extra` is fine, the leader is the error. */
function firstError(extra: Record<string, unknown>) {
  const r = validateRegistration({ name: 'rg-probe', class: 'container', ...extra, leader: 0 }, probe);
  return r.ok ? 'ok' : r.error;
}

describe('machine names (hostname rules)', () => {
  const valid = ['a', 'A', 'a-b', 'a--b', 'a.b', '0', '123', 'a'.repeat(64)];
  const invalid = ['', '-a', 'a-', 'a..b', '.a', 'a.', 'a.b.', 'a.b.c.', 'a_b', 'a-.b', 'a.-b', 'a\tb', 'x~',
    'a'.repeat(65), 'a'.repeat(63) + '.', 'a.'.repeat(32), 'rg/b', '..', 'a b', 'rgé', '.host', 'x'.repeat(300)];
  it.each(valid)('accepts %j', (n) => {
    expect(isValidHostname(n)).toBe(true);
    expect(firstError({ name: n })).toEqual({ invalidParameter: 'leader' });
  });
  it.each(invalid)('refuses %j', (n) => {
    expect(validateRegistration({ name: n, class: 'container', leader: 0 }, probe)).toEqual({
      ok: false,
      error: { invalidParameter: 'name' },
    });
  });
  it('allows .host only for lookups', () => {
    expect(isValidHostname('.host', true)).toBe(true);
    expect(validateLookup({ name: '.host' })).toEqual({ ok: true, value: { name: '.host' } });
  });
});

describe('Register parameters', () => {
  const cases: [Record<string, unknown>, string][] = [
    [{ id: '0123456789abcdef0123456789abcdef' }, 'leader'],
    [{ id: '0123456789ABCDEF0123456789ABCDEF' }, 'leader'],
    [{ id: '01234567-89ab-cdef-0123-456789abcdef' }, 'leader'],
    [{ id: '00000000000000000000000000000000' }, 'leader'],
    [{ id: '0123456789abcdef0123456789abcde' }, 'id'],
    [{ id: '' }, 'id'],
    [{ id: null }, 'id'],
    [{ service: '' }, 'leader'],
    [{ service: 'a"b' }, 'leader'],
    [{ service: null }, 'service'],
    [{ rootDirectory: '/tmp' }, 'leader'],
    [{ rootDirectory: '/tmp/' }, 'leader'],
    [{ rootDirectory: '/' }, 'leader'],
    [{ rootDirectory: 'tmp' }, 'rootDirectory'],
    [{ rootDirectory: '/tmp/../x' }, 'rootDirectory'],
    [{ rootDirectory: '/tmp/./x' }, 'rootDirectory'],
    [{ rootDirectory: '//tmp' }, 'rootDirectory'],
    [{ rootDirectory: '' }, 'rootDirectory'],
    [{ rootDirectory: null }, 'rootDirectory'],
    [{ ifIndices: [] }, 'leader'],
    [{ ifIndices: [2147483647] }, 'leader'],
    [{ ifIndices: Array.from({ length: 100_000 }, (_, i) => i + 1) }, 'leader'],
    [{ ifIndices: [0] }, 'ifIndices'],
    [{ ifIndices: [-1] }, 'ifIndices'],
    [{ ifIndices: [2147483648] }, 'ifIndices'],
    [{ ifIndices: ['1'] }, 'ifIndices'],
    [{ ifIndices: null }, 'ifIndices'],
    [{ vSockCid: 3 }, 'leader'],
    [{ vSockCid: 4294967294 }, 'leader'],
    [{ vSockCid: 0 }, 'vSockCid'],
    [{ vSockCid: 1 }, 'vSockCid'],
    [{ vSockCid: 2 }, 'vSockCid'],
    [{ vSockCid: 4294967295 }, 'vSockCid'],
    [{ vSockCid: 4294967296 }, 'vSockCid'],
    [{ vSockCid: -1 }, 'vSockCid'],
    [{ vSockCid: null }, 'vSockCid'],
    [{ sshAddress: 'a b' }, 'leader'],
    [{ sshAddress: '' }, 'leader'],
    [{ sshAddress: 'a"b' }, 'sshAddress'],
    [{ sshAddress: 'a\\b' }, 'sshAddress'],
    [{ sshAddress: 'a\nb' }, 'sshAddress'],
    [{ sshAddress: "a'b" }, 'sshAddress'],
    [{ sshPrivateKeyPath: '/a/../b' }, 'leader'],
    [{ sshPrivateKeyPath: '/a//b/' }, 'leader'],
    [{ sshPrivateKeyPath: 'a' }, 'sshPrivateKeyPath'],
    [{ sshPrivateKeyPath: '' }, 'sshPrivateKeyPath'],
    [{ allocateUnit: true }, 'leader'],
    [{ allocateUnit: 'yes' }, 'allocateUnit'],
    [{ allocateUnit: null }, 'allocateUnit'],
    [{ leaderProcessId: null }, 'leaderProcessId'],
    [{ unknown: 1 }, 'unknown'],
    [{ class: 'foo' }, 'class'],
  ];
  it.each(cases)('%j → InvalidParameter %s', (extra, parameter) => {
    expect(firstError(extra)).toEqual({ invalidParameter: parameter });
  });

  it('normalizes the id to 32 lowercase hex digits, all zeros meaning none', () => {
    expect(parseId128('01234567-89AB-cdef-0123-456789abcdef')).toBe('0123456789abcdef0123456789abcdef');
    expect(parseId128('00000000000000000000000000000000')).toBe('');
    const r = validateRegistration({ name: 'x', class: 'vm', leader: LIVE, id: '0123456789ABCDEF0123456789ABCDEF' }, probe);
    expect(r.ok && r.value.id).toBe('0123456789abcdef0123456789abcdef');
  });

  it('checks keys in the order the caller sent them', () => {
    expect(validateRegistration({ name: 'rg-b', class: 'container', leader: 4000000, id: 'xyz' }, probe)).toMatchObject({
      error: { invalidParameter: 'leader' },
    });
    expect(validateRegistration({ name: 'rg-b', id: 'xyz', class: 'container', leader: 1 }, probe)).toMatchObject({
      error: { invalidParameter: 'id' },
    });
    expect(validateRegistration({ name: 'rg/b', class: 'foo', leader: 0 }, probe)).toMatchObject({
      error: { invalidParameter: 'name' },
    });
  });

  it.each([0, 1, -1, 2 ** 53, 4000000, 1.5, '123', 'abc'])('refuses leader %j', (leader) => {
    expect(validateRegistration({ name: 'rg-b', class: 'container', leader }, probe)).toMatchObject({
      error: { invalidParameter: 'leader' },
    });
  });

  it('treats a null leader as absent', () => {
    expect(validateRegistration({ name: 'rg-b', class: 'container', leader: null, vSockCid: 0 }, probe)).toMatchObject({
      error: { invalidParameter: 'vSockCid' },
    });
    const r = validateRegistration({ name: 'rg-b', class: 'container', leader: null }, probe);
    expect(r.ok && r.value.leader).toBeUndefined();
  });

  it('checks leaderProcessId: pid, pidfdId, bootId', () => {
    const bad = (v: unknown) =>
      expect(validateRegistration({ name: 'x', class: 'container', leaderProcessId: v }, probe)).toMatchObject({
        error: { invalidParameter: 'leaderProcessId' },
      });
    bad({ pid: 0 });
    bad({ pid: 1 });
    bad(4);
    bad({ pid: 4000000 });
    bad({ pid: LIVE, pidfdId: 1 });
    bad({ pid: LIVE, bootId: '00000000000000000000000000000001' });
    const r = validateRegistration(
      { name: 'x', class: 'container', leaderProcessId: { pid: LIVE, pidfdId: 4243, bootId: '3b1d672845f64b9ea153b9ec7963cf9c' } },
      probe,
    );
    expect(r).toMatchObject({ ok: true, value: { leader: { pid: LIVE, pidfdId: 4243 } } });
  });

  it('reports the second of leader/leaderProcessId when they disagree', () => {
    expect(validateRegistration({ name: 'x', class: 'container', leaderProcessId: { pid: LIVE }, leader: 4343 }, probe)).toMatchObject({
      error: { invalidParameter: 'leader' },
    });
    expect(validateRegistration({ name: 'x', class: 'container', leader: 4343, leaderProcessId: { pid: LIVE } }, probe)).toMatchObject({
      error: { invalidParameter: 'leaderProcessId' },
    });
  });

  it('refuses class host only after all parameters passed', () => {
    expect(validateRegistration({ name: 'x', class: 'host', leader: 4000000 }, probe)).toMatchObject({
      error: { invalidParameter: 'leader' },
    });
    expect(validateRegistration({ name: 'x', class: 'host', leader: LIVE }, probe)).toMatchObject({
      error: { invalidParameter: 'class' },
    });
  });

  it('requires name and class', () => {
    expect(validateRegistration({ class: 'vm' }, probe)).toMatchObject({ error: { invalidParameter: 'name' } });
    expect(validateRegistration({ name: 'x' }, probe)).toMatchObject({ error: { invalidParameter: 'class' } });
  });
});

describe('lookups and Kill', () => {
  it('validates name and pid', () => {
    expect(validateLookup({ name: 'a b' })).toMatchObject({ error: { invalidParameter: 'name' } });
    expect(validateLookup({ name: null })).toMatchObject({ error: { invalidParameter: 'name' } });
    expect(validateLookup({ pid: 5 })).toMatchObject({ error: { invalidParameter: 'pid' } });
    expect(validateLookup({ pid: { pid: -1 } })).toMatchObject({ error: { invalidParameter: 'pid' } });
    expect(validateLookup({ pid: { pid: 'abc' } })).toMatchObject({ error: { invalidParameter: 'pid' } });
    expect(validateLookup({ pid: null })).toEqual({ ok: true, value: {} });
    expect(validateLookup({ pid: { pid: 0 } })).toEqual({ ok: true, value: { pid: { pid: 0 } } });
    expect(validateLookup({ acquireMetadata: 'yes' }, ['acquireMetadata'])).toEqual({ ok: true, value: {} });
  });

  it('validates whom (first of all), then signal (before the lookup) as 262 does', () => {
    const k = (v: Record<string, unknown>) => validateKill(v);
    expect(k({ name: 'x' })).toMatchObject({ error: { invalidParameter: 'signal' } });
    // 262 refuses a bad whom before any other field, wherever it stands (257: after the lookup).
    expect(k({ name: 'x', whom: 'foo' })).toMatchObject({ error: { invalidParameter: 'whom' } });
    expect(k({ pid: { pid: -1 }, signal: 0, whom: 'foo' })).toMatchObject({ error: { invalidParameter: 'whom' } });
    expect(k({ name: 'x', signal: 0 })).toMatchObject({ error: { invalidParameter: 'signal' } });
    expect(k({ name: 'x', signal: 65 })).toMatchObject({ error: { invalidParameter: 'signal' } });
    expect(k({ name: 'x y', signal: 10 })).toMatchObject({ error: { invalidParameter: 'name' } });
    expect(k({ name: 'x', signal: 64 })).toEqual({ ok: true, value: { name: 'x', signal: 64 } });
    expect(k({ name: 'x', signal: 10, whom: 'supervisor' })).toEqual({ ok: true, value: { name: 'x', signal: 10, whom: 'supervisor' } });
    for (const whom of ['foo', '', null, 5, 'Leader', 'leader ']) {
      expect(k({ name: 'x', signal: 10, whom })).toMatchObject({ error: { invalidParameter: 'whom' } });
      expect(parseKillWhom(whom)).toMatchObject({ error: { invalidParameter: 'whom' } });
    }
    expect(parseKillWhom('supervisor')).toEqual({ ok: true, value: 'supervisor' });
    expect(parseKillWhom(undefined)).toEqual({ ok: true, value: 'all' });
    expect(parseKillWhom('leader')).toEqual({ ok: true, value: 'leader' });
  });
});
