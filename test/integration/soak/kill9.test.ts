// CI length of `npm run soak` scenario 2 (kill9): concurrent Register calls while berthd, started by
// berth-activate, is SIGKILLed at random points; every acknowledged machine survives the restarts.
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { runKill9 } from '../../../bench/soak/kill9.js';

const BERTHD = new URL('../../../dist/src/server/main.js', import.meta.url); // the bundle (dist/bin) is used when present
const skipReason =
  process.getuid?.() !== 0
    ? 'needs root (allocateUnit creates cgroup scopes)'
    : !fs.existsSync(BERTHD)
      ? 'berthd is not built (npm run build)'
      : !fs.existsSync('/sys/fs/cgroup/cgroup.controllers') && !fs.existsSync('/sys/fs/cgroup/unified') && !fs.existsSync('/sys/fs/cgroup/systemd')
        ? 'no cgroup hierarchy'
        : undefined;
if (skipReason) console.warn(`soak kill9 test skipped: ${skipReason}`);
const suite = skipReason ? describe.skip : describe;

suite('soak: short kill -9', () => {
  it('loses no acknowledged Register while berthd is killed and socket-activated again', async () => {
    const r = await runKill9({ short: true, log: () => {}, calls: 300 });
    expect(r.skipped).toBeUndefined();
    const report = [...r.failures, ...(r.notes ?? [])].join('\n');
    expect(r.figures.lost, report).toBe(0);
    expect(r.figures.duplicates, report).toBe(0);
    expect(r.figures['wrong-leader'], report).toBe(0);
    expect(Number(r.figures.kills), 'berthd must have been killed more than once').toBeGreaterThan(1);
    expect(Number(r.figures.acknowledged)).toBeGreaterThan(0);
    expect(r.figures.present).toBe(r.figures.acknowledged);
  }, 120_000);
});
