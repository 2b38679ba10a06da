/**
 * Keeps the user database in step with the registry: a machine's leader's uid_map and gid_map are read
 * once and indexed; lookups then never touch /proc. The reading waits until the database is next
 * asked anything (UserDb.settle, before every read), so a Register is not slowed by it and a machine
 * unregistered before anyone asked is never read at all; machines are indexed in registration order.
 * A new range that overlaps an existing machine's is logged and remembered as a warning of the machine.
 */
import type { BerthContext } from './context.js';
import type { Machine } from './registry/machine.js';
import { readIdMaps } from './userdb/idmap.js';

export function indexMachine(ctx: BerthContext, m: Machine): void {
  if (m.class === 'host') return;
  const maps = readIdMaps(m.leader.pid);
  const { overlaps } = ctx.userdb.setMachine({
    name: m.name,
    class: m.class,
    leader: m.leader.pid,
    uidMap: maps.uidMap,
    gidMap: maps.gidMap,
    registeredBy: m.registeredBy,
  });
  if (overlaps.length === 0) return;
  const notes = overlaps.map(
    (o) =>
      `${o.kind} range ${o.range.base}+${o.range.size} overlaps machine ${o.other.machine} (${o.other.base}+${o.other.size})`,
  );
  ctx.warnings.set(m.name, notes);
  for (const n of notes) ctx.logger.warn({ machine: m.name }, n);
}

/**
 * Follows the registry from now on; `initial` (the restored machines) are indexed like machines added
 * later, at the first question.
 */
export function followRegistry(ctx: BerthContext, initial: Iterable<Machine> = []): void {
  const pending = new Map<string, Machine>();
  for (const m of initial) pending.set(m.name, m);
  ctx.userdb.setSettler(() => {
    if (pending.size === 0) return;
    const machines = [...pending.values()];
    pending.clear();
    for (const m of machines) indexMachine(ctx, m);
  });
  ctx.registry.on('event', (e) => {
    if (e.type === 'removed') {
      if (!pending.delete(e.machine.name)) ctx.userdb.removeMachine(e.machine.name);
      ctx.warnings.delete(e.machine.name);
    } else if (e.type === 'added') {
      pending.set(e.machine.name, e.machine);
    }
  });
}
