/**
 * io.systemd.UserDatabase bound to the user database. This file only translates: the call's
 * parameters go to UserDb as they are (it makes machined 257's handler-side checks itself), and
 * its results become one reply or one error. Like 257 a lookup never streams: a call with `more`
 * gets a single reply without `continues`; only a filtered enumeration (below) streams.
 *
 * Lookups are answered from memory. The one exception is a miss while some machine's user
 * namespace had no ID map yet when it was indexed (the map is written after registration, e.g.
 * by a launcher that registers first): those machines' maps are read again from /proc and the
 * lookup retried once, since machined, which reads the map on every lookup, would find it.
 *
 * The filter fields of systemd 258+ (fuzzyNames, dispositionMask, uidMin/uidMax, gidMin/gidMax,
 * uuid) are answered, where machined refuses them and leaves the client to filter: with a UID or
 * name they narrow that lookup (NonMatchingRecordFound when the record fails them); without,
 * they make an enumeration, streamed with `more`, of at most ENUMERATION_LIMIT records (one
 * container's 16-bit range). A filter that would list more is answered EnumerationNotSupported,
 * the error for an enumeration this service does not offer; it never lists part of the answer.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import { type Call, type Handlers, Replies } from '../varlink/call.js';
import { InvalidParameterError, SystemError, VarlinkError } from '../varlink/errors.js';
import {
  BadService,
  ConflictingRecordFound,
  EnumerationNotSupported,
  NoRecordFound,
  NonMatchingRecordFound,
  type GetGroupRecordResult,
  type GetUserRecordResult,
  type IoSystemdUserDatabaseMethods,
} from '../generated/io.systemd.UserDatabase.js';
import type { BerthContext } from './context.js';
import { EncodedError, EncodedParameters } from '../varlink/wire.js';
import { indexMachine } from './userdb-sync.js';
import { UserDbErrors, type UserDbResult } from './userdb/userdb.js';
import { CONTAINER_ID_MIN } from './userdb/names.js';
import { ENUMERATION_LIMIT, type RecordFilter } from './userdb/filters.js';
import type { EnumerationHit } from './userdb/enumerate.js';

const errors: Record<string, new () => VarlinkError> = {
  [UserDbErrors.NoRecordFound]: NoRecordFound,
  [UserDbErrors.BadService]: BadService,
  [UserDbErrors.ConflictingRecordFound]: ConflictingRecordFound,
  [UserDbErrors.EnumerationNotSupported]: EnumerationNotSupported,
  [UserDbErrors.NonMatchingRecordFound]: NonMatchingRecordFound,
};

/** The reply for a UserDb result, or the error to throw. */
export function toReply<R>(r: UserDbResult<R>): R {
  if ('records' in r) return r.records[0]!;
  if ('invalidParameter' in r) throw new InvalidParameterError(r.invalidParameter);
  if ('enumerate' in r) throw new EnumerationNotSupported();
  if (r.error === 'io.systemd.System') throw new SystemError(r.errno);
  const Cls = errors[r.error];
  throw Cls ? new Cls() : new NoRecordFound();
}

/** Re-reads the maps of machines indexed before their user namespace was mapped; true if any changed. */
function refreshUnmapped(ctx: BerthContext): boolean {
  let changed = false;
  for (const { name } of ctx.userdb.unmappedMachines()) {
    const m = ctx.registry.get(name);
    if (!m) continue;
    const before = ctx.userdb.ranges(name).length;
    indexMachine(ctx, m);
    if (ctx.userdb.ranges(name).length !== before) changed = true;
  }
  return changed;
}

/**
 * Whether a miss could turn into a hit once unmapped machines are re-read: host IDs below 65536
 * never resolve, and names must have the vu-/vg- shape. Keeps the common miss (a host user looked
 * up through every userdb socket) free of /proc reads.
 */
function mayResolveLater(id: unknown, name: unknown, prefix: string): boolean {
  if (typeof id === 'number') return id >= CONTAINER_ID_MIN;
  return typeof name === 'string' && name.startsWith(prefix);
}

function lookup<R>(ctx: BerthContext, run: () => UserDbResult<R>, retry: boolean): R {
  let r = run();
  if (retry && 'error' in r && r.error === UserDbErrors.NoRecordFound && ctx.userdb.unmappedMachines().length && refreshUnmapped(ctx)) r = run();
  return toReply(r);
}

/**
 * Found records of one method, serialised, by parameters, for as long as the user database does
 * not change (its version). A record is a pure function of the parameters and the registered
 * machines, and the same few are asked for over and over (ps, ls -l); keeping their text saves
 * building and serialising them each time. A NoRecordFound is kept too, as an encoded error, when it
 * cannot turn into a hit without the database changing (`keepMiss`: not mayResolveLater), which is
 * the host-user lookup NSS makes all the time.
 */
class RecordCache<R> {
  private version = -1;
  private readonly texts = new Map<string, EncodedParameters<R> | EncodedError>();
  constructor(private readonly db: BerthContext['userdb']) {}

  answer(params: object, compute: () => R, keepMiss: boolean): EncodedParameters<R> | EncodedError {
    if (this.version !== this.db.version) {
      this.texts.clear();
      this.version = this.db.version;
    }
    const key = JSON.stringify(params);
    let hit = this.texts.get(key);
    if (!hit) {
      try {
        hit = new EncodedParameters(compute());
      } catch (e) {
        if (!keepMiss || !(e instanceof VarlinkError) || e.error !== UserDbErrors.NoRecordFound) throw e;
        hit = new EncodedError(e.error, e.parameters);
      }
      if (this.texts.size >= 4096) this.texts.clear();
      this.texts.set(key, hit);
    }
    return hit;
  }
}

/** Whether a call has a filter field but neither ID nor name: the only calls that may enumerate. */
function isFilteredEnumeration(p: Record<string, unknown>, id: string, name: string, min: string, max: string): boolean {
  if (p[id] != null || p[name] != null) return false;
  return p.fuzzyNames != null || p.dispositionMask != null || p[min] != null || p[max] != null || p.uuid != null;
}

/**
 * The replies of a filtered enumeration: the hits are collected first (letting other clients'
 * calls run every few thousand candidates, and stopping when the caller goes away), so that a
 * filter matching more than ENUMERATION_LIMIT records is refused before anything is sent.
 */
async function enumeration<R>(
  ctx: BerthContext,
  call: Call,
  check: () => UserDbResult<unknown>,
  source: (f: RecordFilter) => Generator<EnumerationHit | undefined>,
  build: (h: EnumerationHit) => R,
): Promise<Replies<{ record: Record<string, unknown> }>> {
  if (ctx.userdb.unmappedMachines().length) refreshUnmapped(ctx);
  const r = check();
  if (!('enumerate' in r)) throw toReplyError(r);
  const hits: EnumerationHit[] = [];
  for (const h of source(r.enumerate)) {
    if (h === undefined) {
      await nextTurn();
      if (call.signal.aborted) return new Replies([]);
      continue;
    }
    if (hits.length === ENUMERATION_LIMIT) {
      call.log.info({ limit: ENUMERATION_LIMIT }, 'userdb enumeration refused: the filter matches more records than the limit');
      throw new EnumerationNotSupported();
    }
    hits.push(h);
  }
  return new Replies(
    (function* () {
      for (const h of hits) yield { record: build(h) as unknown as Record<string, unknown> };
    })(),
    () => new NoRecordFound(),
  );
}

/** The error a non-enumeration result stands for (toReply throws it). */
function toReplyError(r: UserDbResult<unknown>): unknown {
  try {
    toReply(r);
  } catch (e) {
    return e;
  }
  return new EnumerationNotSupported();
}

export function userdbApi(ctx: BerthContext): Handlers<IoSystemdUserDatabaseMethods> {
  const db = ctx.userdb;
  const users = new RecordCache<GetUserRecordResult>(db);
  const groups = new RecordCache<GetGroupRecordResult>(db);
  return {
    GetUserRecord: (p, call) => {
      if (isFilteredEnumeration(p, 'uid', 'userName', 'uidMin', 'uidMax')) {
        return enumeration(ctx, call, () => db.getUserRecord(p), (f) => db.enumerateUsers(f), (h) => db.userRecordOf(h));
      }
      const later = mayResolveLater(p.uid, p.userName, 'vu-');
      return users.answer(p, () => ({ record: { ...lookup(ctx, () => db.getUserRecord(p), later) } }), !later);
    },
    GetGroupRecord: (p, call) => {
      if (isFilteredEnumeration(p, 'gid', 'groupName', 'gidMin', 'gidMax')) {
        return enumeration(ctx, call, () => db.getGroupRecord(p), (f) => db.enumerateGroups(f), (h) => db.groupRecordOf(h));
      }
      const later = mayResolveLater(p.gid, p.groupName, 'vg-');
      return groups.answer(p, () => ({ record: { ...lookup(ctx, () => db.getGroupRecord(p), later) } }), !later);
    },
    GetMemberships: (p) => toReply(db.getMemberships(p)),
  };
}
