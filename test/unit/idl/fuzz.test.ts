import { describe, it, expect } from 'vitest';
import {
  IdlError,
  formatInterface,
  groupMembers,
  parseInterface,
  systemdCompatibilityProblems,
} from '../../../src/varlink/idl/index.js';
import { CERTIFICATION_IDL } from './certification.js';

/** Small deterministic PRNG (mulberry32) so failures reproduce. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PIECES = ['(', ')', ',', ':', '?', '[]', '[string]', '->', '#', '\n', ' ', '\r\n', 'int', 'T', 'type ', 'method ', 'x', '()', '\u2028', '[', '-', '_'];

describe('parseInterface: mutation fuzzing', () => {
  it('throws nothing but IdlError, and whatever it accepts round-trips through the printer', () => {
    const random = rng(0x5eed);
    const base = `${CERTIFICATION_IDL}\ntype T (a: ?T)\n`;
    let accepted = 0;
    let refused = 0;
    for (let i = 0; i < 3000; i++) {
      let text = base;
      const edits = 1 + Math.floor(random() * 3);
      for (let e = 0; e < edits; e++) {
        const at = Math.floor(random() * text.length);
        const piece = PIECES[Math.floor(random() * PIECES.length)] as string;
        const cut = Math.floor(random() * 3);
        text = text.slice(0, at) + (random() < 0.7 ? piece : '') + text.slice(at + cut);
      }
      let iface;
      try {
        iface = parseInterface(text);
      } catch (err) {
        if (!(err instanceof IdlError)) throw new Error(`non-IdlError ${String(err)} for input:\n${text}`);
        expect(err.position.line).toBeGreaterThanOrEqual(1);
        expect(err.position.column).toBeGreaterThanOrEqual(1);
        refused++;
        continue;
      }
      accepted++;
      const printed = formatInterface(iface);
      expect(parseInterface(printed)).toEqual({ ...iface, members: groupMembers(iface.members) });
      expect(Array.isArray(systemdCompatibilityProblems(iface))).toBe(true);
    }
    // Both outcomes must actually be exercised for the test to mean anything.
    expect(accepted).toBeGreaterThan(100);
    expect(refused).toBeGreaterThan(100);
  });
});
