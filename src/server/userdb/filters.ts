/**
 * The filter fields of io.systemd.UserDatabase lookups (systemd 258 and later send them): parsing
 * them from a call and deciding whether one record passes.
 *
 * What each field means, as systemd's user database documents and implements it:
 * - `uidMin`/`uidMax` (`gidMin`/`gidMax`): the record's ID must lie in the closed interval; each
 *   bound must be a valid ID (not 65535, not 4294967295).
 * - `dispositionMask`: the record's disposition must be one of the listed names. Every name must be
 *   a known disposition; an empty list lets nothing through.
 * - `uuid`: the record must carry this UUID (the all-zero UUID restricts nothing). berth's
 *   synthesized records have none, so any other UUID excludes them all.
 * - `fuzzyNames`: at least one needle must match at least one of the record's names (user name and
 *   real name; group name and description). Matching ignores ASCII case. A needle matches a name
 *   when it occurs anywhere in it, or, for needles of five characters or more, when the two differ
 *   by fewer than three single-character insertions, deletions or substitutions (an edit distance
 *   that tolerates typos without letting very short needles match everything). An empty list
 *   restricts nothing.
 *
 * Disposition of records that berth synthesizes is always `container`.
 */

/** The dispositions a user or group record may have, as systemd 262 names them. */
export const DISPOSITIONS: ReadonlySet<string> = new Set(['intrinsic', 'system', 'dynamic', 'regular', 'container', 'foreign', 'reserved']);

/**
 * The most records one filtered enumeration lists: one container's full 16-bit range. A filter
 * that would list more is answered EnumerationNotSupported (narrow it with the ID range or names).
 */
export const ENUMERATION_LIMIT = 65536;

/** Needles shorter than this only match as substrings. */
const FUZZY_MIN_LENGTH = 5;
/** A needle of FUZZY_MIN_LENGTH or more matches a name this close (edit distance below it). */
const FUZZY_MAX_DISTANCE = 3;

/** The filter of one call, or undefined when the call has none. */
export interface RecordFilter {
  /** Lower-cased needles; empty means no name restriction. */
  readonly fuzzyNames: readonly string[];
  /** Allowed dispositions; undefined means any. */
  readonly dispositions?: ReadonlySet<string>;
  readonly min: number;
  readonly max: number;
  /** Normalised (32 lower-case hex digits, not all zero); undefined means any. */
  readonly uuid?: string;
}

/** The parameter names of one method's filter fields. */
export interface FilterKeys {
  readonly min: 'uidMin' | 'gidMin';
  readonly max: 'uidMax' | 'gidMax';
}

interface MutableFilter {
  fuzzyNames: string[];
  dispositions?: Set<string>;
  min: number;
  max: number;
  uuid?: string;
  /** Which of min/max the call listed first (named when min > max). */
  firstBound?: string;
}

export function emptyFilter(): MutableFilter {
  return { fuzzyNames: [], min: 0, max: 0xfffffffe };
}

const UUID_PLAIN = /^[0-9a-fA-F]{32}$/;
const UUID_DASHED = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/** A 128-bit ID in either spelling systemd accepts, as 32 lower-case hex digits; undefined if neither. */
export function parseUuid(s: string): string | undefined {
  if (UUID_PLAIN.test(s)) return s.toLowerCase();
  if (UUID_DASHED.test(s)) return s.replace(/-/g, '').toLowerCase();
  return undefined;
}

/**
 * Takes one filter field of a call into `f`. Returns false when the value is not acceptable (the
 * caller answers InvalidParameter naming the key). `isId` decides what a valid bound is.
 */
export function takeFilterField(f: MutableFilter, key: string, value: unknown, keys: FilterKeys, isId: (n: number) => boolean): boolean {
  if (value === null) return true;
  if (key === keys.min || key === keys.max) {
    if (typeof value !== 'number' || !isId(value)) return false;
    if (key === keys.min) f.min = value;
    else f.max = value;
    f.firstBound ??= key;
    return true;
  }
  if (key === 'fuzzyNames') {
    if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) return false;
    f.fuzzyNames = (value as string[]).filter((v) => v.length > 0).map(asciiLower);
    return true;
  }
  if (key === 'dispositionMask') {
    if (!Array.isArray(value) || !value.every((v) => typeof v === 'string' && DISPOSITIONS.has(v))) return false;
    f.dispositions = new Set(value as string[]);
    return true;
  }
  if (key === 'uuid') {
    if (typeof value !== 'string') return false;
    const u = parseUuid(value);
    if (u === undefined) return false;
    f.uuid = /^0+$/.test(u) ? undefined : u;
    return true;
  }
  return false;
}

/** The key to name when the bounds are reversed (the one the call listed first), or undefined. */
export function reversedBound(f: MutableFilter): string | undefined {
  return f.min > f.max ? f.firstBound : undefined;
}

/** ASCII-only lower-casing, as systemd compares names (other letters keep their case). */
export function asciiLower(s: string): string {
  return s.replace(/[A-Z]+/g, (m) => m.toLowerCase());
}

/** Edit distance of `a` and `b`, giving up (returning `limit`) once it cannot stay below `limit`. */
export function editDistance(a: string, b: string, limit = Infinity): number {
  if (Math.abs(a.length - b.length) >= limit) return limit;
  let prev = new Array<number>(b.length + 1);
  let cur = new Array<number>(b.length + 1);
  for (let j = 0; j <= b.length; j++) prev[j] = j;
  for (let i = 1; i <= a.length; i++) {
    cur[0] = i;
    let rowMin = i;
    for (let j = 1; j <= b.length; j++) {
      const sub = prev[j - 1]! + (a.charCodeAt(i - 1) === b.charCodeAt(j - 1) ? 0 : 1);
      cur[j] = Math.min(sub, prev[j]! + 1, cur[j - 1]! + 1);
      if (cur[j]! < rowMin) rowMin = cur[j]!;
    }
    if (rowMin >= limit) return limit;
    [prev, cur] = [cur, prev];
  }
  return Math.min(prev[b.length]!, limit);
}

/** Whether any lower-cased needle matches any of the (already lower-cased) names. */
export function fuzzyMatch(lowerNames: readonly string[], needles: readonly string[]): boolean {
  for (const name of lowerNames) {
    for (const n of needles) {
      if (name.includes(n)) return true;
      if (n.length >= FUZZY_MIN_LENGTH && editDistance(name, n, FUZZY_MAX_DISTANCE) < FUZZY_MAX_DISTANCE) return true;
    }
  }
  return false;
}

/**
 * Whether a record with this ID, disposition, UUID and names passes. `names` is only called when
 * the filter has needles, and returns the record's names lower-cased.
 */
export function passes(f: RecordFilter, id: number, disposition: string, uuid: string | undefined, names: () => readonly string[]): boolean {
  if (id < f.min || id > f.max) return false;
  if (f.dispositions && !f.dispositions.has(disposition)) return false;
  if (f.uuid !== undefined && f.uuid !== uuid) return false;
  return f.fuzzyNames.length === 0 || fuzzyMatch(names(), f.fuzzyNames);
}

/** Whether a filter can pass records of this disposition without a UUID at all (else skip enumerating). */
export function admitsSynthesized(f: RecordFilter, disposition: string): boolean {
  return f.min <= f.max && (!f.dispositions || f.dispositions.has(disposition)) && f.uuid === undefined;
}
