/**
 * Keeps the user database in step with the registry: when a machine appears its leader's
 * uid_map and gid_map are read once and indexed; lookups then never touch /proc. A new range
 * that overlaps an existing machine's is logged and remembered as a warning of the machine.
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

export function followRegistry(ctx: BerthContext): void {
  ctx.registry.on('event', (e) => {
    if (e.type === 'removed') {
      ctx.userdb.removeMachine(e.machine.name);
      ctx.warnings.delete(e.machine.name);
    } else if (e.type === 'added') {
      indexMachine(ctx, e.machine);
    }
  });
}
