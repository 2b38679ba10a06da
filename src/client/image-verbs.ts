/**
 * `berthctl` verbs about machine images, with machinectl's names, flags and output: list-images (-a),
 * image-status, show-image (-p, --value; without a name the pool), clone (--read-only), rename, read-only,
 * remove, set-limit and clean (-a). They speak io.systemd.MachineImage over Varlink to berthd.
 */
import { constants } from 'node:os';
import { VarlinkClient } from '../varlink/client.js';
import { VarlinkError } from '../varlink/errors.js';
import { IoSystemdMachineImage, type ListResult } from '../generated/io.systemd.MachineImage.js';
import { formatFields, formatJson, formatTable, type JsonMode } from './output.js';
import { CliError } from './varlink-verbs.js';

export const IMAGE_VERBS = new Set(['list-images', 'image-status', 'show-image', 'clone', 'rename', 'read-only', 'remove', 'set-limit', 'clean']);

export interface ImageVerbOptions {
  address: string;
  json?: JsonMode;
  legend: boolean;
  all: boolean;
  properties: string[];
  value: boolean;
  readOnly: boolean;
}

const EXIT = { ok: 0, failure: 1, usage: 2 } as const;
const UNLIMITED = '18446744073709551615';
/** berthd's pool (its first image directory) unless started with another --image-dir. */
const DEFAULT_POOL = '/var/lib/machines';
const out = (s: string) => process.stdout.write(s);

const ERRNO_TEXT: Record<number, string> = {
  1: 'Operation not permitted', 2: 'No such file or directory', 5: 'Input/output error', 13: 'Permission denied',
  16: 'Device or resource busy', 17: 'File exists', 28: 'No space left on device', 30: 'Read-only file system',
  95: 'Operation not supported',
};

/** What a failed call was about, for the words of its error. */
interface Subject {
  name?: string;
  newName?: string;
  /** machined prefixes a failed rename's system error. */
  renaming?: boolean;
}

/** A Varlink error in machinectl's words. */
function describeError(e: VarlinkError, { name, newName, renaming }: Subject): string {
  const p = e.parameters as { errno?: number; parameter?: string };
  switch (e.error) {
    case 'io.systemd.MachineImage.NoSuchImage':
      return `No image '${name}' known`;
    case 'io.systemd.MachineImage.NotSupported':
      return 'Quota is only supported on btrfs.';
    case 'io.systemd.MachineImage.TooManyOperations':
      return 'Too many ongoing operations';
    case 'io.systemd.System': {
      const n = p.errno ?? 5;
      const symbol = Object.entries(constants.errno).find(([, v]) => v === n)?.[0];
      return (renaming ? 'Failed to rename image: ' : '') + (ERRNO_TEXT[n] ?? (symbol ? `${symbol}` : `errno ${n}`));
    }
    case 'org.varlink.service.InvalidParameter':
      if (p.parameter === 'name' || p.parameter === 'newName') return `Image name '${p.parameter === 'name' ? name : newName}' is invalid.`;
      return `Invalid ${p.parameter}`;
    case 'org.varlink.service.PermissionDenied':
      return 'Access denied';
  }
  return e.error;
}

function failWith(what: string, subject: Subject = {}) {
  return (e: unknown): never => {
    if (e instanceof VarlinkError) throw new CliError(`${what}: ${describeError(e, subject)}`, EXIT.failure);
    throw e;
  };
}

/** A time in µs as machinectl prints it (in UTC). */
function date(us: number | null | undefined): string | undefined {
  if (!us) return undefined;
  const d = new Date(us / 1000);
  const day = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'][d.getUTCDay()];
  return `${day} ${d.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

const UNITS = ['E', 'P', 'T', 'G', 'M', 'K'];

/** Bytes with a 1024-based unit, one decimal when not exact ("0B", "1M", "1.5G"). */
export function formatBytes(n: number): string {
  for (let i = 0; i < UNITS.length; i++) {
    const factor = 1024 ** (UNITS.length - i);
    if (n >= factor) {
      const whole = Math.floor(n / factor);
      const tenth = Math.floor(((n % factor) * 10) / factor);
      return tenth ? `${whole}.${tenth}${UNITS[i]}` : `${whole}${UNITS[i]}`;
    }
  }
  return `${n}B`;
}

/** "10G", "512M", "1000", or infinity/-/none for no limit. */
export function parseSize(s: string): number | string {
  if (['infinity', '-', 'none'].includes(s)) return UNLIMITED;
  const m = /^([0-9]+(?:\.[0-9]+)?)([KMGTPE]?)B?$/i.exec(s);
  if (!m) throw new CliError(`Failed to parse size: ${s}`, EXIT.usage);
  const unit = m[2]!.toUpperCase();
  const factor = unit ? 1024 ** (UNITS.length - UNITS.indexOf(unit)) : 1;
  return Math.floor(Number(m[1]) * factor);
}

function parseBool(s: string): boolean {
  if (['1', 'yes', 'y', 'true', 't', 'on'].includes(s)) return true;
  if (['0', 'no', 'n', 'false', 'f', 'off'].includes(s)) return false;
  throw new CliError(`Failed to parse read-only parameter: ${s}`, EXIT.usage);
}

/** The properties of `show-image`, in machinectl's order and form. */
function imageProperties(i: ListResult): [string, string][] {
  const size = (v: number | null | undefined) => (v === undefined || v === null ? UNLIMITED : String(v));
  const limit = (v: number | null | undefined) => (v === undefined || v === null ? 'infinity' : String(v));
  const props: [string, string | undefined][] = [
    ['Name', i.name],
    ['Path', i.path ?? undefined],
    ['Type', i.type],
    ['ReadOnly', i.readOnly ? 'yes' : 'no'],
    ['CreationTimestamp', date(i.creationTimestamp)],
    ['ModificationTimestamp', date(i.modificationTimestamp)],
    ['Usage', size(i.usage)],
    ['Limit', limit(i.limit)],
    ['UsageExclusive', size(i.usageExclusive)],
    ['LimitExclusive', limit(i.limitExclusive)],
  ];
  return props.filter((p): p is [string, string] => p[1] !== undefined);
}

function printProperties(props: [string, string][], o: ImageVerbOptions): void {
  const wanted = o.properties.flatMap((p) => p.split(',')).filter(Boolean);
  for (const [k, v] of props) {
    if (wanted.length && !wanted.includes(k)) continue;
    out(o.value ? `${v}\n` : `${k}=${v}\n`);
  }
}

function statusText(i: ListResult): string {
  const pretty = i.OSRelease?.find((l) => l.startsWith('PRETTY_NAME='))?.slice(12);
  const fields = formatFields([
    ['Type', i.type],
    ['Path', i.path ?? undefined],
    ['Hostname', i.hostname ?? undefined],
    ['OS', pretty],
    ['RO', i.readOnly ? 'read-only' : 'writable'],
    ['Created', date(i.creationTimestamp)],
    ['Modified', date(i.modificationTimestamp)],
    ['Usage', i.usage !== undefined && i.usage !== null ? formatBytes(i.usage) : undefined],
    ['Limit', i.limit !== undefined && i.limit !== null ? formatBytes(i.limit) : undefined],
  ]);
  return `${i.name}\n${fields.replace(/^/gm, '\t').replace(/\t$/, '')}`;
}

export async function imageVerb(verb: string, args: string[], o: ImageVerbOptions): Promise<number> {
  let c: VarlinkClient;
  try {
    c = await VarlinkClient.connect(o.address, { interfaces: [IoSystemdMachineImage] });
  } catch (e) {
    throw new CliError(`Failed to connect to ${o.address}: ${(e as Error).message}`);
  }
  const img = c.proxy(IoSystemdMachineImage);
  const need = (n: number, usage: string) => {
    if (args.length < n) throw new CliError(`Usage: berthctl ${verb} ${usage}`, EXIT.usage);
  };
  const get = (name: string) => img.List({ name, acquireMetadata: 'graceful' }).catch(failWith('Could not get path to image', { name }));
  try {
    switch (verb) {
      case 'list-images': {
        const rows: ListResult[] = [];
        try {
          for await (const r of img.List.more({})) if (o.all || !r.name.startsWith('.')) rows.push(r);
        } catch (e) {
          if (!(e instanceof VarlinkError && e.error === 'io.systemd.MachineImage.NoSuchImage')) failWith('Could not get images')(e);
        }
        rows.sort((a, b) => a.name.localeCompare(b.name));
        if (o.json) {
          out(formatJson(rows, o.json) + '\n');
          return EXIT.ok;
        }
        if (rows.length === 0 && o.legend) {
          out('No images.\n');
          return EXIT.ok;
        }
        const table = rows.map((r) => [r.name, r.type, r.readOnly ? 'yes' : 'no', r.usage !== undefined && r.usage !== null ? formatBytes(r.usage) : '', date(r.creationTimestamp) ?? '-', date(r.modificationTimestamp) ?? '-']);
        out(formatTable(o.legend ? ['NAME', 'TYPE', 'RO', 'USAGE', 'CREATED', 'MODIFIED'] : undefined, table));
        if (o.legend) out(`\n${rows.length} images listed.\n`);
        return EXIT.ok;
      }
      case 'image-status':
      case 'show-image': {
        if (verb === 'image-status') need(1, 'NAME…');
        if (verb === 'show-image' && args.length === 0) {
          printProperties([['PoolPath', DEFAULT_POOL], ['PoolUsage', UNLIMITED], ['PoolLimit', UNLIMITED]], o);
          return EXIT.ok;
        }
        let first = true;
        for (const name of args) {
          const info = await get(name);
          if (o.json) out(formatJson(info, o.json) + '\n');
          else {
            if (!first) out('\n');
            if (verb === 'show-image') printProperties(imageProperties(info), o);
            else out(statusText(info));
          }
          first = false;
        }
        return EXIT.ok;
      }
      case 'clone':
        need(2, 'NAME NEWNAME [--read-only]');
        await img.Clone({ name: args[0]!, newName: args[1]!, readOnly: o.readOnly }).catch(failWith('Could not clone image', { name: args[0]!, newName: args[1]! }));
        return EXIT.ok;
      case 'rename':
        need(2, 'NAME NEWNAME');
        await img.Update({ name: args[0]!, newName: args[1]! }).catch(failWith('Could not rename image', { name: args[0]!, newName: args[1]!, renaming: true }));
        return EXIT.ok;
      case 'read-only': {
        need(1, 'NAME [BOOL]');
        const readOnly = args[1] === undefined ? true : parseBool(args[1]);
        await img.Update({ name: args[0]!, readOnly }).catch(failWith('Could not mark image read-only', { name: args[0]! }));
        return EXIT.ok;
      }
      case 'remove':
        need(1, 'NAME…');
        for (const name of args) await img.Remove({ name }).catch(failWith('Could not remove image', { name }));
        return EXIT.ok;
      case 'set-limit': {
        need(1, '[NAME] BYTES');
        const limit = parseSize(args[args.length - 1]!);
        if (args.length >= 2) await img.Update({ name: args[0]!, limit }).catch(failWith('Could not set limit', { name: args[0]! }));
        else await img.SetPoolLimit({ limit }).catch(failWith('Could not set limit'));
        return EXIT.ok;
      }
      case 'clean': {
        const removed: { name: string; usageExclusive?: number | null }[] = [];
        try {
          for await (const r of img.CleanPool.more({ mode: o.all ? 'all' : 'hidden' })) {
            removed.push(r);
            if (!o.json) out(`Removed image '${r.name}'\n`);
          }
        } catch (e) {
          if (!(e instanceof VarlinkError && e.error === 'io.systemd.MachineImage.NoSuchImage')) failWith('Failed to clean pool')(e);
        }
        if (o.json) {
          out(formatJson(removed, o.json) + '\n');
          return EXIT.ok;
        }
        const known = removed.every((r) => typeof r.usageExclusive === 'number');
        const total = removed.reduce((s, r) => s + (r.usageExclusive ?? 0), 0);
        out(`Removed ${removed.length} images in total.${known ? ` Total freed exclusive disk space: ${formatBytes(total)}.` : ''}\n`);
        return EXIT.ok;
      }
    }
    throw new CliError(`Unknown command verb '${verb}'.`, EXIT.usage);
  } finally {
    c.close();
  }
}
