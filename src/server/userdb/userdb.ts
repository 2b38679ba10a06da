/**
 * UserDb: users and groups of user-namespaced machines, answered from memory.
 *
 * The registry tells UserDb which machines exist and what their leaders' uid_map/gid_map say
 * (`setMachine`/`removeMachine`); lookups never touch the file system. Query handling reproduces
 * systemd-machined 257's io.systemd.UserDatabase answers (measured against the real daemon; the
 * vectors are in test/unit/userdb/), plus the filter fields of systemd 258+ that machined refuses
 * and berth answers (filters.ts; filtered enumeration in enumerate.ts). UserDb knows nothing of
 * Varlink: it takes the call's parameters as a plain object and returns a result for the API
 * layer to translate.
 *
 * Besides machined's lookups it answers berth's own questions: every machine's ranges, who owns a
 * host ID, and which existing ranges a new machine's ranges overlap. Its types are in userdb-types.ts.
 */
import { type IdMapLine, type IdMapSource, isIdMapError } from './idmap.js';
import { CONTAINER_ID_MIN, UID_INVALID, UID_INVALID16, isValidUid, isValidUserGroupNameRelaxed, isValidUserGroupNameStrict, parseUid } from './names.js';
import { type ContainerGroupRecord, type ContainerUserRecord, groupNameFor, groupRecord, userNameFor, userRecord } from './records.js';
import { RangeIndex } from './range-index.js';
import { type RecordFilter, asciiLower, emptyFilter, passes, reversedBound, takeFilterField } from './filters.js';
import { GROUP_SPEC, MEMBERSHIP_SPEC, type Spec, USER_SPEC, idlCheck, isFilterKey } from './params.js';
import { type EnumerationHit, enumerateRanges } from './enumerate.js';
import { DEFAULT_USERDB_SERVICE } from '../../domain/runtime-paths.js';

import {
  type IdKind,
  type IdOwner,
  type IdRange,
  type RangeOverlap,
  type UserDbErrorName,
  type UserDbMachine,
  type UserDbResult,
  UserDbErrors,
} from './userdb-types.js';

export * from './userdb-types.js';

const EINVAL = 22;

interface Entry {
  readonly machine: UserDbMachine;
  readonly seq: number;
  readonly uidRanges: IdRange[];
  readonly gidRanges: IdRange[];
}

const userPasses = (f: RecordFilter, r: ContainerUserRecord) =>
  passes(f, r.uid, r.disposition, undefined, () => [asciiLower(r.userName), asciiLower(r.realName)]);
const groupPasses = (f: RecordFilter, r: ContainerGroupRecord) =>
  passes(f, r.gid, r.disposition, undefined, () => [asciiLower(r.groupName), asciiLower(r.description)]);

/** The call's parameters as the Varlink layer delivers them (any object; UserDb checks every key). */
type Params = object | null | undefined;

/** A line maps into a private host range unless its host side starts at 0 (the identity map of the host's own namespace). */
function isPrivateLine(l: IdMapLine): boolean {
  return l.outside !== 0;
}

function rangesOf(m: UserDbMachine, kind: IdKind): IdRange[] {
  const src = kind === 'uid' ? m.uidMap : m.gidMap;
  if (isIdMapError(src)) return [];
  return src.filter(isPrivateLine).map((l) => ({
    machine: m.name,
    class: m.class,
    kind,
    base: l.outside,
    size: l.count,
    inside: l.inside,
    registeredBy: m.registeredBy,
  }));
}

export interface UserDbOptions {
  /** The userdb socket's file name; calls must name it in `service`, and records carry it. */
  readonly service?: string;
}

export class UserDb {
  readonly service: string;
  private readonly machines = new Map<string, Entry>();
  private readonly uidIndex = new RangeIndex<IdRange>();
  private readonly gidIndex = new RangeIndex<IdRange>();
  private seq = 0;
  private changes = 0;
  private settler?: () => void;

  /** Changes whenever a machine is set or removed: answers computed before are stale then. */
  get version(): number {
    this.settle();
    return this.changes;
  }

  constructor(options: UserDbOptions = {}) {
    this.service = options.service ?? DEFAULT_USERDB_SERVICE;
  }

  /**
   * `fn` brings the database up to date (userdb-sync.ts indexes machines registered since, which it
   * defers until someone asks); every read calls it first, so an answer never misses a machine that
   * was registered before the question.
   */
  setSettler(fn: () => void): void {
    this.settler = fn;
  }

  /** Runs the settler (see setSettler); reads call it, and so may users of what it maintains beside this database. */
  settle(): void {
    this.settler?.();
  }

  /**
   * Adds a machine, or replaces one of the same name (keeping its place in registration order).
   * Returns the existing ranges the machine's private ranges overlap, for the caller to warn about.
   * Where ranges overlap, lookups by host ID pick the machine registered first.
   */
  setMachine(m: UserDbMachine): { overlaps: RangeOverlap[] } {
    const previous = this.machines.get(m.name);
    const entry: Entry = { machine: m, seq: previous?.seq ?? this.seq++, uidRanges: rangesOf(m, 'uid'), gidRanges: rangesOf(m, 'gid') };
    const overlaps: RangeOverlap[] = [];
    for (const [kind, ranges, index] of [
      ['uid', entry.uidRanges, this.uidIndex],
      ['gid', entry.gidRanges, this.gidIndex],
    ] as const) {
      for (const r of ranges) {
        for (const o of index.intersecting(r.base, r.base + r.size, m.name)) overlaps.push({ kind, range: r, other: o.value });
      }
      index.set(
        m.name,
        ranges.map((r) => ({ start: r.base, end: r.base + r.size, order: entry.seq, value: r })),
      );
    }
    this.machines.set(m.name, entry);
    this.changes++;
    return { overlaps };
  }

  removeMachine(name: string): boolean {
    if (!this.machines.delete(name)) return false;
    this.uidIndex.delete(name);
    this.gidIndex.delete(name);
    this.changes++;
    return true;
  }

  hasMachine(name: string): boolean {
    this.settle();
    return this.machines.has(name);
  }

  /** Machines whose uid or gid map was empty when set (user namespace created, map not written yet), with their leaders. */
  unmappedMachines(): { name: string; leader?: number }[] {
    this.settle();
    const out: { name: string; leader?: number }[] = [];
    for (const { machine: m } of this.machines.values()) {
      const empty = (s: IdMapSource) => !isIdMapError(s) && s.length === 0;
      if (empty(m.uidMap) || empty(m.gidMap)) out.push({ name: m.name, leader: m.leader });
    }
    return out;
  }

  /** Every private UID and GID range, or one machine's; ordered by registration, then by map line. */
  ranges(name?: string): IdRange[] {
    this.settle();
    const entries = name === undefined ? [...this.machines.values()] : [this.machines.get(name)].filter((e): e is Entry => !!e);
    entries.sort((a, b) => a.seq - b.seq);
    return entries.flatMap((e) => [...e.uidRanges, ...e.gidRanges]);
  }

  /** Who owns host UID `uid`: every machine mapping it, first-registered first. Any ID, not only ≥ 65536. */
  uidOwner(uid: number): IdOwner[] {
    this.settle();
    return this.owners(this.uidIndex, uid);
  }

  gidOwner(gid: number): IdOwner[] {
    this.settle();
    return this.owners(this.gidIndex, gid);
  }

  /** io.systemd.UserDatabase.GetUserRecord with the call's parameters. */
  getUserRecord(params: Params): UserDbResult<ContainerUserRecord> {
    this.settle();
    return this.getRecord(params, USER_SPEC, (id) => this.userByUid(id), (n) => this.userByName(n), (r) => r.userName, userPasses);
  }

  /** io.systemd.UserDatabase.GetGroupRecord with the call's parameters. */
  getGroupRecord(params: Params): UserDbResult<ContainerGroupRecord> {
    this.settle();
    return this.getRecord(params, GROUP_SPEC, (id) => this.groupByGid(id), (n) => this.groupByName(n), (r) => r.groupName, groupPasses);
  }

  /**
   * What a filtered enumeration of users lists, in order: container machines by registration,
   * each private range's host IDs ascending (IDs below 65536, the invalid inside IDs and names
   * that are not strict user names are left out, as lookups leave them out). Every
   * ENUMERATION_TICK candidates it yields undefined, so that a caller can let other work run.
   */
  enumerateUsers(f: RecordFilter): Generator<EnumerationHit | undefined> {
    this.settle();
    return enumerateRanges(f, 'uid', this.containerRanges('uid'));
  }

  enumerateGroups(f: RecordFilter): Generator<EnumerationHit | undefined> {
    this.settle();
    return enumerateRanges(f, 'gid', this.containerRanges('gid'));
  }

  /** Each container machine's private ranges of one kind, in registration order (a snapshot). */
  private containerRanges(kind: IdKind): { machine: string; ranges: readonly IdRange[] }[] {
    return [...this.machines.values()]
      .filter((e) => e.machine.class === 'container')
      .sort((a, b) => a.seq - b.seq)
      .map((e) => ({ machine: e.machine.name, ranges: kind === 'uid' ? e.uidRanges : e.gidRanges }));
  }

  userRecordOf(h: EnumerationHit): ContainerUserRecord {
    return userRecord(h.name, h.host, h.machine, h.inside, this.service);
  }

  groupRecordOf(h: EnumerationHit): ContainerGroupRecord {
    return groupRecord(h.name, h.host, h.machine, h.inside, this.service);
  }

  /**
   * A lookup by id, by name or by both (then they must name the same record). A record found
   * that the call's filter excludes is NonMatchingRecordFound (checked before the name conflict,
   * as systemd's own userdb service does). Neither id nor name is an enumeration: without a
   * filter this database does not offer one (as machined); with one the caller enumerates.
   */
  private getRecord<R>(
    params: Params,
    spec: Spec,
    byId: (id: number) => UserDbResult<R>,
    byName: (name: string) => UserDbResult<R>,
    nameOf: (record: R) => string,
    accepts: (f: RecordFilter, record: R) => boolean,
  ): UserDbResult<R> {
    const q = this.dispatch(params, spec);
    if ('invalidParameter' in q || 'error' in q) return q;
    const name = q.names[spec.names[0]!];
    const f = q.filter;
    if (q.id !== undefined || name !== undefined) {
      const r = q.id !== undefined ? byId(q.id) : byName(name!);
      if (!('records' in r)) return r;
      if (f && !accepts(f, r.records[0]!)) return { error: UserDbErrors.NonMatchingRecordFound };
      if (q.id !== undefined && name !== undefined && nameOf(r.records[0]!) !== name) return { error: UserDbErrors.ConflictingRecordFound };
      return r;
    }
    if (f) return { enumerate: f };
    return { error: UserDbErrors.EnumerationNotSupported };
  }


  /** io.systemd.UserDatabase.GetMemberships: machined models no memberships, so valid calls always miss. */
  getMemberships(params: Params): UserDbResult<{ userName: string; groupName: string }> {
    const q = this.dispatch(params, MEMBERSHIP_SPEC);
    if ('invalidParameter' in q || 'error' in q) return q;
    return { error: UserDbErrors.NoRecordFound };
  }

  /** The user record for host UID `uid`, bypassing parameter checks. */
  userByUid(uid: number): UserDbResult<ContainerUserRecord> {
    this.settle();
    const hit = this.translateOut(this.uidIndex, uid);
    if ('error' in hit) return hit;
    const name = userNameFor(hit.machine, hit.inside);
    if (!isValidUserGroupNameStrict(name)) return { error: UserDbErrors.NoRecordFound };
    return { records: [userRecord(name, uid, hit.machine, hit.inside, this.service)] };
  }

  groupByGid(gid: number): UserDbResult<ContainerGroupRecord> {
    this.settle();
    const hit = this.translateOut(this.gidIndex, gid);
    if ('error' in hit) return hit;
    const name = groupNameFor(hit.machine, hit.inside);
    if (!isValidUserGroupNameStrict(name)) return { error: UserDbErrors.NoRecordFound };
    return { records: [groupRecord(name, gid, hit.machine, hit.inside, this.service)] };
  }

  userByName(userName: string): UserDbResult<ContainerUserRecord> {
    this.settle();
    const hit = this.translateIn(userName, 'vu-', 'uid');
    if ('error' in hit) return hit;
    return { records: [userRecord(userName, hit.host, hit.machine, hit.inside, this.service)] };
  }

  groupByName(groupName: string): UserDbResult<ContainerGroupRecord> {
    this.settle();
    const hit = this.translateIn(groupName, 'vg-', 'gid');
    if ('error' in hit) return hit;
    return { records: [groupRecord(groupName, hit.host, hit.machine, hit.inside, this.service)] };
  }

  // Host ID → (machine, inside ID). Only containers, only IDs ≥ 65536, identity (host-root) lines never match.
  private translateOut(
    index: RangeIndex<IdRange>,
    id: number,
  ): { machine: string; inside: number } | { error: UserDbErrorName } | { error: 'io.systemd.System'; errno: number } {
    if (id < CONTAINER_ID_MIN) return { error: UserDbErrors.NoRecordFound };
    for (const e of index.lookup(id)) {
      const r = e.value;
      if (r.class !== 'container') continue;
      const inside = id - r.base + r.inside;
      // 257 fails this case with EINVAL rather than answering "not found".
      if (inside === UID_INVALID16 || inside === UID_INVALID) return { error: 'io.systemd.System', errno: EINVAL };
      return { machine: r.machine, inside };
    }
    return { error: UserDbErrors.NoRecordFound };
  }

  // `vu-MACHINE-ID` → host ID. Unlike the other direction this uses every map line, including the
  // identity map of a container without its own user namespace (so `vu-NAME-0` can be host UID 0).
  private translateIn(
    name: string,
    prefix: string,
    kind: IdKind,
  ): { machine: string; inside: number; host: number } | { error: UserDbErrorName } | { error: 'io.systemd.System'; errno: number } {
    const miss = { error: UserDbErrors.NoRecordFound } as const;
    if (!isValidUserGroupNameStrict(name) || !name.startsWith(prefix)) return miss;
    const rest = name.slice(prefix.length);
    const dash = rest.lastIndexOf('-');
    if (dash < 0) return miss;
    const inside = parseUid(rest.slice(dash + 1));
    if (inside === undefined) return miss;
    const entry = this.machines.get(rest.slice(0, dash));
    if (!entry || entry.machine.class !== 'container') return miss;
    const map = kind === 'uid' ? entry.machine.uidMap : entry.machine.gidMap;
    if (isIdMapError(map)) return { error: 'io.systemd.System', errno: map.errno };
    for (const l of map) {
      if (inside >= l.inside && inside - l.inside < l.count) return { machine: entry.machine.name, inside, host: inside - l.inside + l.outside };
    }
    return miss;
  }

  private owners(index: RangeIndex<IdRange>, id: number): IdOwner[] {
    return index.lookup(id).map((e) => ({ machine: e.value.machine, class: e.value.class, inside: id - e.value.base + e.value.inside, range: e.value }));
  }

  /**
   * The handler-side parameter checks, in the order machined makes them: keys in the order the
   * call lists them (first bad one named), then `service`. The Varlink layer has already checked
   * the IDL types; these checks repeat what matters so UserDb is safe on its own.
   */
  private dispatch(
    params: Params,
    spec: Spec,
  ): { id?: number; names: Record<string, string | undefined>; filter?: RecordFilter } | { invalidParameter: string } | { error: UserDbErrorName } {
    const p = (params ?? {}) as Record<string, unknown>;
    const keys = Object.keys(p);
    const idl = idlCheck(p, keys, spec);
    if (idl !== undefined) return { invalidParameter: idl };
    let id: number | undefined;
    let service: string | undefined;
    let filter: ReturnType<typeof emptyFilter> | undefined;
    const names: Record<string, string | undefined> = {};
    for (const key of keys) {
      const value = p[key];
      if (value === undefined) continue;
      if (key === 'service') {
        if (typeof value !== 'string') return { invalidParameter: key };
        service = value;
      } else if (spec.id !== undefined && key === spec.id) {
        if (typeof value !== 'number' || !isValidUid(value)) return { invalidParameter: key };
        id = value;
      } else if (spec.names.includes(key)) {
        if (typeof value !== 'string' || !isValidUserGroupNameRelaxed(value)) return { invalidParameter: key };
        names[key] = value;
      } else if (isFilterKey(spec, key)) {
        if (value === null) continue;
        filter ??= emptyFilter();
        if (!takeFilterField(filter, key, value, spec.filter!, isValidUid)) return { invalidParameter: key };
      } else return { invalidParameter: key };
    }
    if (service === undefined) return { invalidParameter: 'service' };
    // Reversed bounds: the bound the call listed first is named, as 262 names it (it refuses any bound).
    const reversed = filter && reversedBound(filter);
    if (reversed) return { invalidParameter: reversed };
    if (service !== this.service) return { error: UserDbErrors.BadService };
    return { id, names, filter };
  }
}
