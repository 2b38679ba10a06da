import { describe, expect, it } from 'vitest';
import type { Machine } from '../../../src/server/registry/machine.js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { formatStateFile, parseStateFile, StateStore } from '../../../src/server/registry/state.js';
import { cescape, cunescape } from '../../../src/domain/c-escape.js';

const machine: Machine = {
  name: 'rg-a',
  id: '0123456789abcdef0123456789abcdef',
  service: 'a b"c$d\\e\'f`g#h\nx=y',
  class: 'vm',
  leader: { pid: 6195, pidfdId: 6196, starttime: 12 },
  rootDirectory: '/tmp/é\\',
  ifIndices: [1, 2],
  vSockCid: 5,
  sshAddress: 'vsock/5',
  sshPrivateKeyPath: '/tmp/key',
  unit: 'machine-rg\\x2da.scope',
  unitCgroup: '/machine.slice/machine-rg\\x2da.scope',
  ownsScope: true,
  timestamp: { realtime: 1795452799511485, monotonic: 4891018173 },
  registeredBy: 1000,
  allocateUnit: true,
};

describe('state files', () => {
  it('escape as machined does (observed: SERVICE/ROOT/SCOPE lines of the real 257)', () => {
    expect(cescape('a b"c$d\\e\'f`g#h\nx=y')).toBe('a b\\"c$d\\\\e\\\'f`g#h\\nx=y');
    expect(cescape('é\t~')).toBe('\\303\\251\\t~');
    expect(cescape('/tmp/é\\')).toBe('/tmp/\\303\\251\\\\');
    expect(cescape('machine-rg\\x2dq2.scope')).toBe('machine-rg\\\\x2dq2.scope');
    for (const s of ['a b"c$d\\e\'f`g#h\nx=y', 'é\t~\u0001', '/tmp/é\\', 'machine-rg\\x2dq2.scope']) {
      expect(cunescape(cescape(s))).toBe(s);
    }
  });

  it('write machined key order and round-trip', () => {
    const text = formatStateFile(machine);
    expect(text.split('\n').map((l) => l.split('=')[0])).toEqual([
      '# This is private data. Do not parse.', 'NAME', 'UID', 'SCOPE', 'SERVICE', 'ROOT', 'ID', 'LEADER',
      'LEADER_PIDFDID', 'CLASS', 'REALTIME', 'MONOTONIC', 'NETIF', 'VSOCK_CID', 'SSH_ADDRESS',
      'SSH_PRIVATE_KEY_PATH', '',
    ]);
    const p = parseStateFile(text);
    expect(p).toEqual({
      ok: true,
      warnings: [],
      record: {
        name: 'rg-a', uid: 1000, unit: machine.unit, service: machine.service, rootDirectory: machine.rootDirectory,
        id: machine.id, leader: 6195, leaderPidfdId: 6196, class: 'vm', realtime: 1795452799511485,
        monotonic: 4891018173, ifIndices: [1, 2], vSockCid: 5, sshAddress: 'vsock/5', sshPrivateKeyPath: '/tmp/key',
      },
    });
  });

  it('write UID=0 for root and VSOCK_CID=4294967295 without a CID (as 262 does), omit NETIF when empty', () => {
    const { vSockCid: _none, ...noCid } = machine;
    const text = formatStateFile({ ...noCid, registeredBy: 0, ifIndices: [] });
    expect(text).toMatch(/^UID=0$/m);
    expect(text).toMatch(/^VSOCK_CID=4294967295$/m);
    expect(parseStateFile(text)).toMatchObject({ ok: true, record: { uid: 0 } });
    expect((parseStateFile(text) as { record: object }).record).not.toHaveProperty('vSockCid');
    expect(text).not.toMatch(/^NETIF=/m);
  });

  it('read files written by the real systemd-machined 257', () => {
    // Byte for byte as /run/systemd/machines/rg-q2 and rg-a were written by machined 257.
    const q2 =
      '# This is private data. Do not parse.\nNAME=rg-q2\nSCOPE=machine-rg\\\\x2dq2.scope\nSERVICE=\\303\\251\\t~\n' +
      'ROOT=/tmp/\\303\\251\\\\\nLEADER=12199\nCLASS=vm\nREALTIME=1795452953410856\nMONOTONIC=5044917544\n';
    expect(parseStateFile(q2)).toEqual({
      ok: true,
      warnings: [],
      record: {
        name: 'rg-q2', unit: 'machine-rg\\x2dq2.scope', service: 'é\t~', rootDirectory: '/tmp/é\\', leader: 12199,
        class: 'vm', realtime: 1795452953410856, monotonic: 5044917544,
      },
    });
    const a =
      '# This is private data. Do not parse.\nNAME=rg-a\nSCOPE=machine-rg-a.scope\nSERVICE=svc\nROOT=/tmp\n' +
      'ID=0123456789abcdef0123456789abcdef\nLEADER=6195\nCLASS=container\nREALTIME=1795452799511485\n' +
      'MONOTONIC=4891018173\nNETIF=1 2\n';
    const p = parseStateFile(a);
    expect(p.ok && p.record).toMatchObject({ name: 'rg-a', unit: 'machine-rg-a.scope', ifIndices: [1, 2], id: '0123456789abcdef0123456789abcdef' });
  });

  it('tolerate damage: unknown keys, garbage values, truncation', () => {
    const p = parseStateFile('NAME=x\nLEADER=12ab\nFOO=bar\nnot a line\nCLASS=toaster\nREALTIME=5\nMONOTO');
    expect(p.ok).toBe(true);
    if (!p.ok) return;
    expect(p.record).toEqual({ name: 'x', realtime: 5 });
    expect(p.warnings).toHaveLength(5); // LEADER, FOO, "not a line", CLASS, truncated MONOTO
    expect(parseStateFile('').ok).toBe(false);
    expect(parseStateFile('\u0000\u0001garbage').ok).toBe(false);
    expect(parseStateFile('# This is private data. Do not parse.\nNAM').ok).toBe(false);
  });
});

describe('StateStore links', () => {
  it('makes a unit link in place, replaces a stale one; forgetFile and unlinkUnit remove them', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-state-'));
    try {
      const store = new StateStore(dir);
      store.linkUnit('machine-a.scope', 'a');
      expect(fs.readlinkSync(path.join(dir, 'unit:machine-a.scope'))).toBe('a');
      // A link left by a machine that is gone is replaced, not refused.
      store.linkUnit('machine-a.scope', 'b');
      expect(fs.readlinkSync(path.join(dir, 'unit:machine-a.scope'))).toBe('b');
      store.write({ ...machine, name: 'b', unit: 'machine-a.scope' });
      expect(fs.existsSync(path.join(dir, 'b'))).toBe(true);
      store.forgetFile('b');
      expect(fs.readdirSync(dir)).toEqual(['unit:machine-a.scope']);
      store.unlinkUnit('machine-a.scope');
      expect(fs.readdirSync(dir)).toEqual([]);
      // Forgetting what is already gone is no error.
      expect(() => {
        store.forgetFile('b');
        store.unlinkUnit('machine-a.scope');
      }).not.toThrow();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('remove() keeps a unit link that points at another machine', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-state-'));
    try {
      const store = new StateStore(dir);
      store.linkUnit('machine-a.scope', 'other');
      store.remove('a', 'machine-a.scope');
      expect(fs.readlinkSync(path.join(dir, 'unit:machine-a.scope'))).toBe('other');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
