/**
 * io.berth.Machine: what berth offers beyond machined — a change stream with sequence numbers,
 * registration that replaces only dead entries, and the id ranges of user-namespaced machines.
 */
import { Replies, type Handlers } from '../varlink/call.js';
import { PermissionDeniedError } from '../varlink/errors.js';
import {
  MachineExists,
  NoOwner,
  NoSuchMachine,
  type IdRange as WireRange,
  type IoBerthMachineMethods,
  type MachineInfo,
  type WatchResult,
} from '../generated/io.berth.Machine.js';
import type { BerthContext } from './context.js';
import type { Machine } from './registry/machine.js';
import { validateRegistration } from './machine-params.js';
import { liveProcessProbe } from './registry/registry.js';
import type { IdRange } from './userdb/userdb.js';
import type { JournalEntry } from './watch.js';
import { caller, toVarlinkError } from './machine-api.js';

export function machineInfo(ctx: BerthContext, m: Machine): MachineInfo {
  const info: MachineInfo = { name: m.name, class: m.class };
  if (m.id) info.id = m.id;
  if (m.service !== undefined) info.service = m.service;
  info.leader = { pid: m.leader.pid, ...(m.leader.pidfdId !== undefined ? { pidfdId: m.leader.pidfdId } : {}) };
  if (m.rootDirectory !== undefined) info.rootDirectory = m.rootDirectory;
  if (m.unit !== undefined) info.unit = m.unit;
  info.timestamp = m.timestamp.realtime;
  if (m.vSockCid !== undefined) info.vSockCid = m.vSockCid;
  if (m.sshAddress !== undefined) info.sshAddress = m.sshAddress;
  if (m.ifIndices?.length) info.ifIndices = [...m.ifIndices];
  info.registeredBy = m.registeredBy;
  ctx.userdb.settle(); // the warnings come from indexing the machine's ID maps
  const warnings = ctx.warnings.get(m.name);
  if (warnings?.length) info.warnings = warnings;
  return info;
}

function wireRange(r: IdRange): WireRange {
  return { machine: r.machine, kind: r.kind, hostBase: r.base, innerBase: r.inside, size: r.size, registeredBy: r.registeredBy };
}

function entryReply(ctx: BerthContext, e: JournalEntry): WatchResult {
  if (e.type === 'removed') return { event: 'removed', sequence: e.sequence, name: e.machine.name };
  return { event: e.type, sequence: e.sequence, machine: machineInfo(ctx, e.machine) };
}

/**
 * The Watch stream: subscribe first (so nothing falls between the listing and the live part),
 * then either replay what the client missed or send a fresh listing, then follow live changes.
 */
async function* watch(ctx: BerthContext, since: number | undefined, signal: AbortSignal): AsyncGenerator<WatchResult> {
  const journal = ctx.journal;
  const queue: JournalEntry[] = [];
  let wake: (() => void) | undefined;
  const onEntry = (e: JournalEntry) => {
    queue.push(e);
    wake?.();
  };
  const onAbort = () => wake?.();
  journal.on('entry', onEntry);
  signal.addEventListener('abort', onAbort);
  try {
    const start = journal.sequence;
    const missed = since === undefined ? undefined : journal.after(since);
    if (missed) {
      for (const e of missed) yield entryReply(ctx, e);
      yield { event: 'synced', sequence: start };
    } else {
      let reset = true;
      for (const m of ctx.registry.machines()) {
        yield { event: 'present', sequence: start, machine: machineInfo(ctx, m), ...(reset ? { reset } : {}) };
        reset = false;
      }
      yield { event: 'synced', sequence: start, ...(reset ? { reset } : {}) };
    }
    for (;;) {
      while (queue.length) {
        const e = queue.shift()!;
        if (e.sequence > start) yield entryReply(ctx, e);
      }
      if (signal.aborted) return;
      await new Promise<void>((r) => (wake = r));
      wake = undefined;
    }
  } finally {
    journal.off('entry', onEntry);
    signal.removeEventListener('abort', onAbort);
  }
}

export function berthApi(ctx: BerthContext): Handlers<IoBerthMachineMethods> {
  return {
    Watch: ({ since }, call) => new Replies(watch(ctx, since ?? undefined, call.signal), undefined, true),

    RegisterReplacingDead: async (params, call) => {
      const who = caller(call);
      if (!ctx.policy.mayRegisterLeader(call.peer, params.leaderProcessId?.pid ?? params.leader ?? who.pid)) throw new PermissionDeniedError();
      const spec = validateRegistration(params, liveProcessProbe);
      if (!spec.ok) throw toVarlinkError(spec.error);
      const r = await ctx.registry.registerOrReplaceIfDead(spec.value, who);
      if (!r.ok) {
        const e = toVarlinkError(r.error);
        if (e.error === 'io.systemd.Machine.MachineExists') throw new MachineExists();
        throw e;
      }
      return { replaced: r.value.replaced };
    },

    Describe: ({ name }) => {
      const m = ctx.registry.get(name);
      if (!m || m.class === 'host') throw new NoSuchMachine();
      return { machine: machineInfo(ctx, m) };
    },

    ListRanges: ({ machine }) => {
      if (machine !== undefined && machine !== null && !ctx.registry.get(machine)) throw new NoSuchMachine();
      return { ranges: ctx.userdb.ranges(machine ?? undefined).map(wireRange) };
    },

    UidOwner: ({ uid }) => {
      const owner = ctx.userdb.uidOwner(uid)[0];
      if (!owner) throw new NoOwner();
      return { range: wireRange(owner.range), innerUid: owner.inside };
    },
  };
}
