/**
 * The change journal behind io.berth.Machine.Watch.
 *
 * Every registry change gets a sequence number that only grows, across restarts too: it is the
 * larger of the previous number plus one and the current time in microseconds, so a restarted
 * daemon never reuses a number a client has seen. At least the last `capacity` changes are kept; a client
 * that reconnects with the last number it saw gets exactly the changes after it when they are
 * all still kept, and a full listing marked `reset` otherwise (after a restart, or a long gap).
 */
import { EventEmitter } from 'node:events';
import type { Machine } from './registry/machine.js';
import type { Registry, RegistryEvent } from './registry/registry.js';

export interface JournalEntry {
  sequence: number;
  type: 'added' | 'removed' | 'changed';
  machine: Machine;
}

export class ChangeJournal extends EventEmitter<{ entry: [JournalEntry] }> {
  private readonly entries: JournalEntry[] = [];
  private last: number;
  /** Highest sequence number no longer kept. */
  private droppedUpTo = 0;
  /** Sequence at which this journal started: nothing before it can be replayed. */
  readonly origin: number;

  constructor(
    registry: Registry,
    private readonly capacity = 4096,
  ) {
    super();
    this.setMaxListeners(0);
    this.last = this.origin = nowMicros();
    registry.on('event', (e: RegistryEvent) => this.record(e));
  }

  get sequence(): number {
    return this.last;
  }

  private next(): number {
    this.last = Math.max(this.last + 1, nowMicros());
    return this.last;
  }

  private record(e: RegistryEvent): void {
    const entry: JournalEntry = { sequence: this.next(), type: e.type, machine: e.machine };
    this.entries.push(entry);
    // Up to twice the capacity is kept, and the older half dropped at once: dropping one entry per change
    // would move the whole array every time.
    if (this.entries.length >= 2 * this.capacity) {
      const gone = this.entries.splice(0, this.entries.length - this.capacity);
      this.droppedUpTo = gone[gone.length - 1]!.sequence;
    }
    this.emit('entry', entry);
  }

  /** The changes after `since`, or undefined when some of them are no longer kept. */
  after(since: number): JournalEntry[] | undefined {
    if (since > this.last) return undefined;
    if (since === this.last) return [];
    if (since < this.origin || since < this.droppedUpTo) return undefined;
    return this.entries.filter((e) => e.sequence > since);
  }
}

function nowMicros(): number {
  return Math.floor(Date.now() * 1000);
}
