/**
 * org.freedesktop.machine1 bound to the registry: the Manager object's interface (lookups, the
 * registrations, the per-machine methods under their Manager names, the user and group mapping, the pool
 * properties, MachineNew/MachineRemoved), the Machine objects' subtree, and the image methods and Image
 * objects of image-dbus.ts. Like machine-api.ts this only
 * translates: the policy and the operations are machine-operations.ts's, the registry's state is the one
 * the Varlink API sees.
 */
import type { CallContext, InterfaceSpec, MethodSpec, SubtreeSpec, Variant } from '../dbus/index.js';
import { labelFromPath } from '../dbus/index.js';
import type { BerthContext } from './context.js';
import type { Machine } from './registry/machine.js';
import { MachineOperations } from './machine-operations.js';
import { isValidUid } from './userdb/names.js';
import { callerOf, invalidArgs, MACHINE_PREFIX, machinePath, noMachineForPid, noSuchMachine, unwrap } from './machine-dbus-errors.js';
import { machineInterface, machineMethods, type MachineState } from './machine-dbus-object.js';
import { fromProperties, toSpec, type DBusRegistration } from './machine-dbus-register.js';
import { ImageOperations } from './image-operations.js';
import { imageBus } from './image-dbus.js';

const UINT64_MAX = (1n << 64n) - 1n;

export interface MachineBus {
  manager: InterfaceSpec;
  machines: SubtreeSpec;
  /** The Image objects (image-dbus.ts). */
  images: SubtreeSpec;
  /** Machines Terminate was asked to stop, until they are gone (State "closing"). */
  closing: Set<string>;
}

export function machineBus(ctx: BerthContext): MachineBus {
  const { registry } = ctx;
  const ops = new MachineOperations(ctx);
  const closing = new Set<string>();
  const methods = machineMethods(ops);

  const byName = (name: string): Machine => {
    const m = registry.get(name);
    if (!m) throw noSuchMachine(name);
    return m;
  };

  /** The machine of a machine object's path; `self` is the caller's own machine, as in machined. */
  const machineAt = async (c: CallContext): Promise<Machine> => {
    const label = labelFromPath(MACHINE_PREFIX, c.path);
    if (label === 'self') {
      const { pid } = await callerOf(c);
      const m = pid !== undefined ? registry.findByPid(pid) : undefined;
      if (m) return m;
    }
    return byName(label ?? '');
  };

  const register = async (r: DBusRegistration, allocateUnit: boolean, c: CallContext, scope?: [string, Variant][]): Promise<unknown[]> => {
    const spec = { ...toSpec(r, allocateUnit), ...(scope?.length ? { scopeProperties: scope } : {}) };
    const m = unwrap(await ops.register(spec, await callerOf(c)), { name: spec.name });
    ctx.logger.info({ machine: m.name, leader: m.leader.pid, unit: m.unit, via: 'dbus' }, 'registered');
    return [machinePath(m.name)];
  };
  const classic = (create: boolean, network: boolean): MethodSpec => ({
    in: `sayssus${network ? 'ai' : ''}${create ? 'a(sv)' : ''}`,
    out: 'o',
    inNames: ['name', 'id', 'service', 'class', 'leader', 'root_directory', ...(network ? ['ifindices'] : []), ...(create ? ['scope_properties'] : [])],
    outNames: ['path'],
    handler: (a, c) =>
      register({ name: a[0], id: a[1], service: a[2], class: a[3], leader: a[4], rootDirectory: a[5], ...(network ? { ifIndices: a[6] } : {}) }, create, c,
        create ? a[network ? 7 : 6] : undefined),
  });
  const ex = (create: boolean): MethodSpec => ({
    in: create ? 'sa(sv)a(sv)' : 'sa(sv)',
    out: 'o',
    inNames: ['name', 'properties', ...(create ? ['scope_properties'] : [])],
    outNames: ['path'],
    handler: (a, c) => register(fromProperties(a[0], (a[1] as [string, Variant][])), create, c, create ? a[2] : undefined),
  });

  const mapFrom = (key: 'uid' | 'gid'): MethodSpec => ({
    in: 'su', out: 'u', inNames: ['name', `${key}_inner`], outNames: [`${key}_outer`],
    handler([name, id]: any[]) {
      const m = byName(name);
      if (!isValidUid(id)) throw invalidArgs(`Invalid ${key === 'uid' ? 'user' : 'group'} ID ${id}`);
      const r = unwrap(ops.mapFrom(m, { [key]: id }), { name });
      return [r[key]];
    },
  });
  const mapTo = (key: 'uid' | 'gid'): MethodSpec => ({
    in: 'u', out: 'sou', inNames: [`${key}_outer`], outNames: ['machine_name', 'machine_path', `${key}_inner`],
    handler([id]: any[]) {
      if (!isValidUid(id)) throw invalidArgs(`Invalid ${key === 'uid' ? 'user' : 'group'} ID ${id}`);
      const r = unwrap(ops.mapTo({ [key]: id }), { name: '', id });
      return [r.machineName, machinePath(r.machineName), r[key]];
    },
  });

  const managerMethods: Record<string, MethodSpec> = {
    GetMachine: { in: 's', out: 'o', inNames: ['name'], outNames: ['machine'], handler: ([name]) => [machinePath(byName(name).name)] },
    GetMachineByPID: {
      in: 'u', out: 'o', inNames: ['pid'], outNames: ['machine'],
      handler([pid]: any[]) {
        // machined answers 0 as any unknown PID.
        const m = pid > 0 ? registry.findByPid(pid) : undefined;
        if (!m) throw noMachineForPid(pid);
        return [machinePath(m.name)];
      },
    },
    ListMachines: {
      in: '', out: 'a(ssso)', inNames: [], outNames: ['machines'],
      handler: () => [[...registry.list()].map((m) => [m.name, m.class, m.service ?? '', machinePath(m.name)])],
    },
    CreateMachine: classic(true, false),
    CreateMachineWithNetwork: classic(true, true),
    CreateMachineEx: ex(true),
    RegisterMachine: classic(false, false),
    RegisterMachineWithNetwork: classic(false, true),
    RegisterMachineEx: ex(false),
    UnregisterMachine: {
      in: 's', out: '', inNames: ['name'], outNames: [],
      async handler([name]: any[], c) {
        const caller = await callerOf(c);
        const m = registry.get(name);
        unwrap(m ? ops.unregister(m, caller) : ops.unregisterEnded({ name }, caller), { name });
        return [];
      },
    },
    MapFromMachineUser: mapFrom('uid'),
    MapFromMachineGroup: mapFrom('gid'),
    MapToMachineUser: mapTo('uid'),
    MapToMachineGroup: mapTo('gid'),
  };
  for (const mm of Object.values(methods)) {
    managerMethods[mm.managerName] = {
      in: `s${mm.in}`, out: mm.out, inNames: ['name', ...mm.inNames], outNames: mm.outNames,
      handler: ([name, ...rest], c) => mm.run(byName(name), rest, c),
    };
  }
  const imageOps = ImageOperations.of(ctx);
  const { managerMethods: imageMethods, images } = imageBus(imageOps);
  Object.assign(managerMethods, imageMethods);

  const manager: InterfaceSpec = {
    name: 'org.freedesktop.machine1.Manager',
    methods: managerMethods,
    properties: {
      PoolPath: { type: 's', emitsChange: 'false', get: () => imageOps.poolPath },
      PoolUsage: { type: 't', emitsChange: 'false', get: () => UINT64_MAX },
      PoolLimit: { type: 't', emitsChange: 'false', get: () => UINT64_MAX },
    },
    signals: {
      MachineNew: { signature: 'so', names: ['machine', 'path'] },
      MachineRemoved: { signature: 'so', names: ['machine', 'path'] },
    },
  };

  const stateOf = (m: Machine): MachineState => (closing.has(m.name) ? 'closing' : 'running');
  const machines: SubtreeSpec = {
    interfaces: [machineInterface(methods, machineAt, stateOf)],
    exists: (path, c) => {
      const label = labelFromPath(MACHINE_PREFIX, path);
      if (label === undefined) return false;
      if (label === 'self') return machineAt(c).then(() => true, () => false);
      return registry.get(label) !== undefined;
    },
    children: () => [...registry.list()].map((m) => machinePath(m.name)),
  };
  return { manager, machines, images, closing };
}
