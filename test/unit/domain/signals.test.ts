import { constants } from 'node:os';
import { describe, expect, it } from 'vitest';
import { parseSignal, SIGNAL_MAX, SIGNALS, SIGRTMIN, SIGRTMIN_PLUS_3 } from '../../../src/domain/signals.js';

describe('signals', () => {
  it('knows the 31 standard signals with the numbers Node has for them', () => {
    expect(Object.keys(SIGNALS)).toHaveLength(31);
    const node = constants.signals as Record<string, number>;
    for (const [name, n] of Object.entries(SIGNALS)) if (node[`SIG${name}`] !== undefined) expect(node[`SIG${name}`], name).toBe(n);
  });
  it('reads names with or without SIG, in any case, and numbers 1..64', () => {
    expect(parseSignal('TERM')).toBe(15);
    expect(parseSignal('SIGKILL')).toBe(9);
    expect(parseSignal('sigwinch')).toBe(28);
    expect(parseSignal('1')).toBe(1);
    expect(parseSignal(String(SIGNAL_MAX))).toBe(64);
    for (const bad of ['0', '65', 'SIGNOPE', '', 'SIG', 'TERM ', 'toString', 'constructor']) expect(parseSignal(bad), bad).toBeUndefined();
  });
  it('reads the real-time range', () => {
    expect(SIGRTMIN).toBe(34);
    expect(parseSignal('SIGRTMIN+3')).toBe(SIGRTMIN_PLUS_3);
    expect(SIGRTMIN_PLUS_3).toBe(37);
    expect(parseSignal('rtmin')).toBe(34);
    expect(parseSignal('RTMAX')).toBe(64);
    expect(parseSignal('RTMAX-2')).toBe(62);
    expect(parseSignal('RTMIN+30')).toBe(64);
    for (const bad of ['RTMIN+31', 'RTMIN-1', 'RTMAX+1', 'RTMAX-31']) expect(parseSignal(bad), bad).toBeUndefined();
  });
});
