/**
 * Filtered enumeration of the records synthesized for container machines' private ID ranges:
 * which (name, host ID, machine, inside ID) a filter lets through, in a stable order.
 */
import { type RecordFilter, admitsSynthesized, asciiLower, fuzzyMatch } from './filters.js';
import { CONTAINER_ID_MIN, UID_INVALID, UID_INVALID16, isValidUserGroupNameStrict } from './names.js';

/** Candidates examined between two chances for the caller to let other work run. */
export const ENUMERATION_TICK = 4096;

/** One record a filtered enumeration lists, before it is built. */
export interface EnumerationHit {
  readonly name: string;
  /** Host UID/GID. */
  readonly host: number;
  readonly machine: string;
  /** The ID inside the machine. */
  readonly inside: number;
}

interface Range {
  readonly base: number;
  readonly size: number;
  readonly inside: number;
}

/**
 * The hits of `f` over `machines` (registration order), each range's host IDs ascending. Left
 * out, as the lookups leave them out: host IDs below 65536, inside IDs 65535 and 4294967295, and
 * names that are not strict user names (a machine name with a dot, or too long). Yields undefined
 * every ENUMERATION_TICK candidates. Only the part of each range inside [min, max] is examined.
 */
export function* enumerateRanges(
  f: RecordFilter,
  kind: 'uid' | 'gid',
  machines: readonly { machine: string; ranges: readonly Range[] }[],
): Generator<EnumerationHit | undefined> {
  if (!admitsSynthesized(f, 'container')) return;
  const prefix = kind === 'uid' ? 'vu-' : 'vg-';
  const label = kind === 'uid' ? 'uid ' : 'gid ';
  const fuzzy = f.fuzzyNames.length > 0;
  let work = 0;
  for (const { machine, ranges } of machines) {
    const lower = asciiLower(machine);
    for (const r of ranges) {
      const lo = Math.max(r.base, CONTAINER_ID_MIN, f.min);
      const hi = Math.min(r.base + r.size - 1, f.max);
      for (let host = lo; host <= hi; host++) {
        if (++work % ENUMERATION_TICK === 0) yield undefined;
        const inside = host - r.base + r.inside;
        if (inside === UID_INVALID16 || inside === UID_INVALID) continue;
        const name = prefix + machine + '-' + inside;
        if (!isValidUserGroupNameStrict(name)) continue;
        // The record's names as the filter sees them: the user/group name and the real name/description.
        if (fuzzy && !fuzzyMatch([prefix + lower + '-' + inside, label + inside + ' of container ' + lower], f.fuzzyNames)) continue;
        yield { name, host, machine, inside };
      }
    }
  }
}
