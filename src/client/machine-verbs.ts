/**
 * `berthctl` verbs about machines: list, status, show, terminate, kill, register, users,
 * uid-owner, watch. They only speak Varlink to berthd (or to any machined-compatible registry).
 */
import fs from 'node:fs';
import { VarlinkClient } from '../varlink/client.js';
import { VarlinkError } from '../varlink/errors.js';
import { IoSystemdMachine, type ListResult, type MachineClass } from '../generated/io.systemd.Machine.js';
import { IoBerthMachine, type IdRange, type MachineInfo } from '../generated/io.berth.Machine.js';
import { formatFields, formatJson, formatTable, type JsonMode } from './output.js';
import { CliError } from './varlink-verbs.js';
import { isValidLookupName, isValidMachineName, machineNameRefusal } from '../domain/machine-name.js';
import { parseSignal as signalNumber } from '../domain/signals.js';
import { unreachable } from './unreachable.js';

export interface MachineVerbOptions {
  address: string;
  json?: JsonMode;
  legend: boolean;
  all: boolean;
  killWhom?: string;
  signal?: string;
  leader?: string;
  class?: string;
  directory?: string;
  service?: string;
  since?: string;
}

/** Exit codes scripts can rely on (documented in the README). */
export const EXIT = { ok: 0, failure: 1, usage: 2, noSuchMachine: 4 } as const;

const out = (s: string) => process.stdout.write(s);

async function connect(o: MachineVerbOptions): Promise<VarlinkClient> {
  try {
    return await VarlinkClient.connect(o.address, { interfaces: [IoSystemdMachine, IoBerthMachine] });
  } catch (e) {
    throw unreachable(o.address, e);
  }
}

function fail(e: unknown, what: string): never {
  if (e instanceof VarlinkError) {
    const noSuch = e.error.endsWith('.NoSuchMachine');
    throw new CliError(`${what}: ${e.error}${Object.keys(e.parameters).length ? ' ' + JSON.stringify(e.parameters) : ''}`, noSuch ? EXIT.noSuchMachine : EXIT.failure);
  }
  throw e;
}

function osField(m: ListResult, key: string): string {
  const line = m.OSRelease?.find((l) => l.startsWith(`${key}=`));
  return line ? line.slice(key.length + 1) : '-';
}

function formatAddress(a: { family: number; address: number[] }): string {
  if (a.family === 2) return a.address.join('.');
  const parts: string[] = [];
  for (let i = 0; i + 1 < a.address.length; i += 2) parts.push(((a.address[i]! << 8) | a.address[i + 1]!).toString(16));
  return parts.join(':').replace(/(^|:)0(:0)+(:|$)/, '::');
}

function timestamp(us: number | null | undefined): string | undefined {
  if (!us) return undefined;
  return new Date(us / 1000).toISOString();
}

/**
 * Refuse a machine name before anything is sent, with the message berthd's rule gives everywhere (exit 2).
 * `lookup`: the name of a machine to find, where `.host` means the host; otherwise a name to register or start.
 */
export function refuseBadMachineNames(names: readonly string[], kind: 'lookup' | 'new'): void {
  for (const name of names) {
    if (!(kind === 'lookup' ? isValidLookupName(name) : isValidMachineName(name))) throw new CliError(machineNameRefusal(name), EXIT.usage);
  }
}

/** Which arguments of a verb are machine names. */
function machineNameArgs(verb: string, args: string[]): { names: string[]; kind: 'lookup' | 'new' } {
  if (verb === 'register') return { names: args.slice(0, 1), kind: 'new' };
  if (verb === 'users') return { names: args.slice(0, 1), kind: 'lookup' };
  if (['status', 'show', 'terminate', 'kill', 'unregister'].includes(verb)) return { names: args, kind: 'lookup' };
  return { names: [], kind: 'lookup' };
}

/** One call per named machine, in order; the first failure ends the verb. */
async function eachMachine(names: string[], usage: string, verb: string, call: (name: string) => Promise<unknown>): Promise<number> {
  if (names.length === 0) throw new CliError(usage, EXIT.usage);
  for (const name of names) {
    try {
      await call(name);
    } catch (e) {
      fail(e, `Could not ${verb} machine ${name}`);
    }
  }
  return EXIT.ok;
}

export async function machineVerb(verb: string, args: string[], o: MachineVerbOptions): Promise<number> {
  const { names, kind } = machineNameArgs(verb, args);
  refuseBadMachineNames(names, kind);
  const c = await connect(o);
  try {
    const m = c.proxy(IoSystemdMachine);
    const b = c.proxy(IoBerthMachine);
    switch (verb) {
      case 'list': {
        const rows: ListResult[] = [];
        try {
          for await (const r of m.List.more({ acquireMetadata: 'graceful' })) if (o.all || r.class !== 'host') rows.push(r);
        } catch (e) {
          if (!(e instanceof VarlinkError && e.error.endsWith('.NoSuchMachine'))) fail(e, 'Could not list machines');
        }
        if (o.json) {
          out(formatJson(rows, o.json) + '\n');
          return EXIT.ok;
        }
        const table = rows.map((r) => {
          const addrs = r.addresses ?? [];
          const first = addrs[0] ? formatAddress(addrs[0]) + (addrs.length > 1 ? '…' : '') : '-';
          return [r.name, r.class, r.service ?? '-', osField(r, 'ID'), osField(r, 'VERSION_ID'), first];
        });
        out(formatTable(o.legend ? ['MACHINE', 'CLASS', 'SERVICE', 'OS', 'VERSION', 'ADDRESSES'] : undefined, table));
        if (o.legend) out(`\n${rows.length} machines listed.\n`);
        return EXIT.ok;
      }
      case 'status':
      case 'show': {
        if (args.length === 0) throw new CliError(`Usage: berthctl ${verb} NAME…`, EXIT.usage);
        let first = true;
        for (const name of args) {
          let info: ListResult;
          let extra: MachineInfo | undefined;
          try {
            info = await m.List({ name, acquireMetadata: 'graceful' });
          } catch (e) {
            fail(e, `Could not get machine ${name}`);
          }
          try {
            if (info.class !== 'host') extra = (await b.Describe({ name })).machine;
          } catch {
            // Not served by this registry (e.g. a plain machined): show what List gave.
          }
          if (o.json) {
            out(formatJson({ ...info, ...(extra ? { registeredBy: extra.registeredBy, warnings: extra.warnings ?? [] } : {}) }, o.json) + '\n');
            continue;
          }
          if (!first) out('\n');
          first = false;
          if (verb === 'show') out(showProperties(info, extra));
          else out(statusText(info, extra));
        }
        return EXIT.ok;
      }
      case 'terminate':
        return await eachMachine(args, 'Usage: berthctl terminate NAME…', 'terminate', (name) => m.Terminate({ name }));
      case 'kill': {
        if (args.length === 0) throw new CliError('Usage: berthctl kill NAME… [--kill-whom=leader|supervisor|all] [--signal=SIG]', EXIT.usage);
        const signal = parseSignal(o.signal ?? 'SIGTERM');
        const whom = o.killWhom ?? 'all';
        if (whom !== 'leader' && whom !== 'supervisor' && whom !== 'all') throw new CliError(`Invalid --kill-whom '${whom}'.`, EXIT.usage);
        return await eachMachine(args, '', 'kill', (name) => m.Kill({ name, whom, signal }));
      }
      case 'register': {
        const [name] = args;
        if (!name || !o.leader) throw new CliError('Usage: berthctl register NAME --leader PID [--class container|vm] [--directory DIR]', EXIT.usage);
        const leader = Number(o.leader);
        if (!Number.isInteger(leader) || leader <= 0) throw new CliError(`Invalid leader PID '${o.leader}'.`, EXIT.usage);
        try {
          await m.Register({
            name,
            // Any other word goes to berthd as typed, which refuses it with InvalidParameter.
            class: (o.class ?? 'container') as MachineClass,
            leader,
            service: o.service ?? 'berthctl',
            ...(o.directory ? { rootDirectory: o.directory } : {}),
            allocateUnit: true,
          });
        } catch (e) {
          fail(e, `Could not register machine ${name}`);
        }
        return EXIT.ok;
      }
      case 'unregister':
        return await eachMachine(args, 'Usage: berthctl unregister NAME…', 'unregister', (name) => m.Unregister({ name }));
      case 'users': {
        let ranges: IdRange[];
        try {
          ranges = (await b.ListRanges(args[0] ? { machine: args[0] } : {})).ranges;
        } catch (e) {
          fail(e, 'Could not list ranges');
        }
        if (o.json) {
          out(formatJson(ranges, o.json) + '\n');
          return EXIT.ok;
        }
        const rows = ranges.map((r) => [
          r.machine,
          r.kind.toUpperCase(),
          String(r.hostBase),
          String(r.hostBase + r.size - 1),
          String(r.size),
          String(r.innerBase),
          r.registeredBy === undefined || r.registeredBy === null ? '-' : String(r.registeredBy),
        ]);
        out(formatTable(o.legend ? ['MACHINE', 'KIND', 'HOST-FIRST', 'HOST-LAST', 'SIZE', 'INSIDE-FIRST', 'REGISTERED-BY'] : undefined, rows));
        if (o.legend) out(`\n${rows.length} ranges listed.\n`);
        return EXIT.ok;
      }
      case 'uid-owner': {
        const uid = Number(args[0]);
        if (!args[0] || !Number.isInteger(uid) || uid < 0) throw new CliError('Usage: berthctl uid-owner UID', EXIT.usage);
        try {
          const r = await b.UidOwner({ uid });
          if (o.json) out(formatJson(r, o.json) + '\n');
          else out(`${uid} is UID ${r.innerUid} of machine ${r.range.machine} (range ${r.range.hostBase}…${r.range.hostBase + r.range.size - 1}).\n`);
          return EXIT.ok;
        } catch (e) {
          if (e instanceof VarlinkError && e.error === 'io.berth.Machine.NoOwner') {
            if (o.json) out(formatJson(null, o.json) + '\n');
            else out(`${uid} belongs to no registered machine.\n`);
            return EXIT.failure;
          }
          fail(e, 'Could not look up the UID');
        }
      }
      // eslint-disable-next-line no-fallthrough
      case 'watch': {
        const since = o.since === undefined ? undefined : Number(o.since);
        try {
          for await (const ev of b.Watch.more(since !== undefined ? { since } : {}, { timeout: 0 })) {
            if (o.json) out(formatJson(ev, o.json) + '\n');
            else out(`${ev.sequence} ${ev.event}${ev.reset ? ' (reset)' : ''} ${ev.machine?.name ?? ev.name ?? ''}\n`);
          }
        } catch (e) {
          fail(e, 'Watch ended');
        }
        return EXIT.ok;
      }
      default:
        throw new CliError(`Unknown command '${verb}'. See 'berthctl --help'.`, EXIT.usage);
    }
  } finally {
    c.close();
  }
}

export function parseSignal(s: string): number {
  const n = signalNumber(s);
  if (n === undefined) throw new CliError(`Unknown signal '${s}'.`, EXIT.usage);
  return n;
}

/** A host interface's name by index, as machinectl's status shows it (the index when it is not found). */
function interfaceName(index: number): string {
  try {
    for (const name of fs.readdirSync('/sys/class/net')) {
      if (fs.readFileSync(`/sys/class/net/${name}/ifindex`, 'utf8').trim() === String(index)) return name;
    }
  } catch {
    // no sysfs: the number has to do
  }
  return String(index);
}

function statusText(m: ListResult, extra: MachineInfo | undefined): string {
  const pretty = m.OSRelease?.find((l) => l.startsWith('PRETTY_NAME='))?.slice(12);
  const fields: [string, string | string[] | undefined][] = [
    ['Since', timestamp(m.timestamp?.realtime)],
    ['Leader', m.leader ? String(m.leader.pid) : undefined],
    ['Supervisor', m.supervisor ? String(m.supervisor.pid) : undefined],
    ['Service', `${m.service ?? '-'}; class ${m.class}`],
    ['Root', m.rootDirectory ?? undefined],
    ['Unit', m.unit ? `${m.unit}${m.subgroup ? ` (subgroup ${m.subgroup})` : ''}` : undefined],
    ['Control', m.controlAddress ?? undefined],
    ['OS', pretty],
    ['UID Shift', m.UIDShift === undefined || m.UIDShift === null ? undefined : String(m.UIDShift)],
    ['Iface', (extra?.ifIndices ?? []).map(interfaceName)],
    ['Address', (m.addresses ?? []).map(formatAddress)],
    ['Registered by', extra?.registeredBy === undefined || extra.registeredBy === null ? undefined : `UID ${extra.registeredBy}`],
    ['Warnings', extra?.warnings ?? []],
  ];
  return `${m.name}${m.id ? `(${m.id})` : ''}\n${formatFields(fields)
    .split('\n')
    .map((l) => (l ? `  ${l}` : l))
    .join('\n')}`;
}

function showProperties(m: ListResult, extra: MachineInfo | undefined): string {
  const props: [string, unknown][] = [
    ['Name', m.name],
    ['Id', m.id ?? ''],
    ['Class', m.class],
    ['Service', m.service ?? ''],
    ['Unit', m.unit ?? ''],
    ['Leader', m.leader?.pid ?? ''],
    ['Supervisor', m.supervisor?.pid ?? ''],
    ['Subgroup', m.subgroup ?? ''],
    ['RootDirectory', m.rootDirectory ?? ''],
    ['Timestamp', timestamp(m.timestamp?.realtime) ?? ''],
    ['TimestampMonotonic', m.timestamp?.monotonic ?? ''],
    ['VSockCid', m.vSockCid ?? ''],
    ['SSHAddress', m.sshAddress ?? ''],
    ['ControlAddress', m.controlAddress ?? ''],
    ['UIDShift', m.UIDShift ?? ''],
    ['NetworkInterfaces', (extra?.ifIndices ?? []).join(' ')],
    ['RegisteredBy', extra?.registeredBy ?? ''],
    ['Warnings', (extra?.warnings ?? []).join('; ')],
  ];
  return props.map(([k, v]) => `${k}=${v}`).join('\n') + '\n';
}
