import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import type { Machine } from '../../../src/server/registry/machine.js';
import type { Registry } from '../../../src/server/registry/registry.js';
import { ChangeJournal } from '../../../src/server/watch.js';

const machine = (name: string) => ({ name }) as unknown as Machine;

describe('ChangeJournal', () => {
  it('replays exactly the changes after a kept sequence number, and refuses one that was dropped', () => {
    const registry = new EventEmitter();
    const journal = new ChangeJournal(registry as unknown as Registry, 4);
    const seen: number[] = [];
    journal.on('entry', (e) => seen.push(e.sequence));
    for (let i = 0; i < 20; i++) registry.emit('event', { seq: i + 1, type: 'added', machine: machine(`m${i}`) });
    expect(seen).toHaveLength(20);
    // Sequence numbers only grow.
    expect(seen.every((s, i) => i === 0 || s > seen[i - 1]!)).toBe(true);
    expect(journal.sequence).toBe(seen[19]);
    // At least the last `capacity` changes are kept.
    const after = journal.after(seen[15]!);
    expect(after?.map((e) => e.machine.name)).toEqual(['m16', 'm17', 'm18', 'm19']);
    expect(journal.after(seen[19]!)).toEqual([]);
    // Older ones are gone: a client that saw only those gets a full listing instead.
    expect(journal.after(seen[2]!)).toBeUndefined();
    expect(journal.after(seen[19]! + 1)).toBeUndefined();
  });
});
