// CI length of `npm run soak` scenario 1 (fuzz): generated messages against a real berthd for
// about 30 s, plus interface texts for the IDL parser; berthd must neither crash nor hang.
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';

const BERTHD = new URL('../../../dist/src/server/main.js', import.meta.url); // the bundle (dist/bin) is used when present
const fastCheck = await import('fast-check').then(
  () => true,
  () => false,
);
const skipReason =
  process.getuid?.() !== 0
    ? 'needs root (berthd creates cgroup scopes for the machines the fuzz registers)'
    : !fs.existsSync(BERTHD)
      ? 'berthd is not built (npm run build)'
      : !fastCheck
        ? 'fast-check is not installed (npm install)'
        : undefined;
if (skipReason) console.warn(`soak fuzz test skipped: ${skipReason}`);
const suite = skipReason ? describe.skip : describe;

suite('soak: short fuzz', () => {
  it('survives ~30 s of generated messages without a crash or a hang, and the IDL parser throws only IdlError', async () => {
    const { runFuzz } = await import('../../../bench/soak/fuzz.js');
    const r = await runFuzz({ short: true, log: () => {}, budgetMs: 30_000, idlTexts: 3000 });
    expect(r.skipped).toBeUndefined();
    const report = [...r.failures, ...(r.notes ?? [])].join('\n');
    expect(r.figures.crashes, report).toBe(0);
    expect(r.figures.hangs, report).toBe(0);
    expect(r.figures['idl-non-IdlError'], report).toBe(0);
    expect(Number(r.figures['idl-texts'])).toBe(3000);
    // The run really sent something: the wrong-type pass alone is several hundred calls.
    expect(Number(r.figures.sent)).toBeGreaterThan(1000);
    expect(Number(r.figures['watchdog-calls'])).toBeGreaterThan(10);
  }, 120_000);
});
