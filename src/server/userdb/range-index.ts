/**
 * RangeIndex: which entries cover a host ID, in O(log n).
 *
 * Entries are half-open ranges [start, end) of host IDs; they may overlap. The index cuts the ID line
 * at every range boundary into disjoint segments, each listing the entries that cover it (ordered by
 * the caller's `order`, so the first is the winner), and answers a lookup with one binary search.
 * Building is O(n log n); the index rebuilds lazily on the first lookup after a change, so a burst of
 * registrations costs one rebuild.
 */

export interface RangeEntry<T> {
  readonly start: number;
  /** Exclusive. */
  readonly end: number;
  /** Lower sorts first among entries covering the same ID. */
  readonly order: number;
  readonly value: T;
}

interface Segment<T> {
  start: number;
  end: number;
  entries: RangeEntry<T>[];
}

const EMPTY: readonly never[] = Object.freeze([]);

export class RangeIndex<T> {
  private readonly byKey = new Map<string, RangeEntry<T>[]>();
  private starts: number[] = [];
  private segments: Segment<T>[] = [];
  private dirty = false;

  /** Replaces all entries filed under `key` (e.g. one machine's lines). */
  set(key: string, entries: RangeEntry<T>[]): void {
    const kept = entries.filter((e) => e.end > e.start);
    if (kept.length) this.byKey.set(key, kept);
    else this.byKey.delete(key);
    this.dirty = true;
  }

  delete(key: string): void {
    if (this.byKey.delete(key)) this.dirty = true;
  }

  /** All entries covering `id`, winner first. */
  lookup(id: number): readonly RangeEntry<T>[] {
    if (this.dirty) this.rebuild();
    const starts = this.starts;
    let lo = 0;
    let hi = starts.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (starts[mid]! <= id) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    if (found < 0) return EMPTY;
    const seg = this.segments[found]!;
    return id < seg.end ? seg.entries : EMPTY;
  }

  /** Entries (of other keys) whose ranges intersect [start, end). Linear; meant for registration time. */
  intersecting(start: number, end: number, exceptKey?: string): RangeEntry<T>[] {
    const out: RangeEntry<T>[] = [];
    for (const [key, list] of this.byKey) {
      if (key === exceptKey) continue;
      for (const e of list) if (e.start < end && start < e.end) out.push(e);
    }
    return out.sort((a, b) => a.order - b.order || a.start - b.start);
  }

  get size(): number {
    return this.byKey.size;
  }

  private rebuild(): void {
    const all: RangeEntry<T>[] = [];
    for (const list of this.byKey.values()) all.push(...list);
    // Sweep over boundaries; `active` holds the entries covering the current point.
    const bounds = new Set<number>();
    for (const e of all) {
      bounds.add(e.start);
      bounds.add(e.end);
    }
    const points = [...bounds].sort((a, b) => a - b);
    const byStart = [...all].sort((a, b) => a.start - b.start);
    const active: RangeEntry<T>[] = [];
    const segments: Segment<T>[] = [];
    let next = 0;
    for (let i = 0; i < points.length - 1; i++) {
      const p = points[i]!;
      for (let j = active.length - 1; j >= 0; j--) if (active[j]!.end <= p) active.splice(j, 1);
      while (next < byStart.length && byStart[next]!.start === p) active.push(byStart[next++]!);
      if (active.length === 0) continue;
      const entries = active.length === 1 ? [active[0]!] : [...active].sort((a, b) => a.order - b.order);
      segments.push({ start: p, end: points[i + 1]!, entries });
    }
    this.segments = segments;
    this.starts = segments.map((s) => s.start);
    this.dirty = false;
  }
}
