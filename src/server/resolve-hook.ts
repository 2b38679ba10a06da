/**
 * io.systemd.Resolve.Hook as machined 262 serves it on RUNTIME/systemd/resolve.hook/io.systemd.Machine, so that
 * systemd-resolved resolves machine names to the machines' addresses.
 *
 * QueryFilter names every registered machine but the host as a domain (with `more`, a new filter follows each
 * registration and removal). ResolveRecord looks each key's name up as a machine name, exactly as written:
 *   - some key names a machine: rcode 0 and, for the A/AAAA keys of class IN, one record per address of that
 *     family (the addresses GetMachineAddresses and List report, TTL 0); other keys add nothing;
 *   - else some key lies below a machine's name: rcode 3 (NXDOMAIN), the machine's subtree is ours and empty;
 *   - else an empty reply: resolved goes on as usual.
 * A machine without a network namespace of its own fails the call with ENONET, a VM with EOPNOTSUPP, as
 * machined's address lookup does. Bad questions (empty, a key that is no valid DNS name, class or type out
 * of range) get InvalidParameter `question`.
 */
import { Replies, type Call, type Handlers } from '../varlink/call.js';
import { InvalidParameterError, SystemError } from '../varlink/errors.js';
import type { Answer, IoSystemdResolveHookMethods, QueryFilterResult, ResolveRecordParameters, ResolveRecordResult } from '../generated/io.systemd.Resolve.Hook.js';
import type { Registry, RegistryEvent } from './registry/registry.js';
import type { Machine } from './registry/machine.js';
import { machineAddresses, type MachineAddress } from './registry/metadata.js';
import { Errno } from './registry/machine.js';
import {
  addressRecordWire,
  dnsLabels,
  parentDomains,
  DNS_CLASS_IN,
  DNS_RCODE_NXDOMAIN,
  DNS_RCODE_SUCCESS,
  DNS_TYPE_A,
  DNS_TYPE_AAAA,
} from './resolve-hook-dns.js';

const AF_INET = 2;
const AF_INET6 = 10;
const ENONET = 64;
const EOPNOTSUPP = 95;

interface Key {
  class: number;
  type: number;
  name: string;
  labels: string[];
}

/** The filter: names of all machines but the host, in registration order. */
function filter(registry: Registry): QueryFilterResult {
  const names: string[] = [];
  for (const m of registry.machines()) if (m.class !== 'host') names.push(m.name);
  return { filterDomains: names };
}

/** The current filter, then a new one whenever a machine is added or removed, until the caller hangs up. */
async function* filterUpdates(registry: Registry, signal: AbortSignal): AsyncGenerator<QueryFilterResult> {
  let pending = false;
  let wake: (() => void) | undefined;
  const onEvent = (e: RegistryEvent) => {
    if (e.type === 'changed') return;
    pending = true;
    wake?.();
  };
  const onAbort = () => wake?.();
  registry.on('event', onEvent);
  signal.addEventListener('abort', onAbort);
  try {
    yield filter(registry);
    for (;;) {
      if (signal.aborted) return;
      if (pending) {
        pending = false;
        yield filter(registry);
        continue;
      }
      await new Promise<void>((r) => (wake = r));
      wake = undefined;
    }
  } finally {
    registry.off('event', onEvent);
    signal.removeEventListener('abort', onAbort);
  }
}

/** A DNS class or type: an integer 0..65535 (a decimal string too, as JSON integers may arrive). */
function uint16(v: unknown): number | undefined {
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
  return typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 0xffff ? n : undefined;
}

/** The question's keys, or InvalidParameter `question` for anything resolved would refuse. */
function parseQuestion(question: ResolveRecordParameters['question']): Key[] {
  const bad = () => new InvalidParameterError('question');
  if (!Array.isArray(question) || question.length === 0) throw bad();
  return question.map((q) => {
    const k = q?.key;
    if (!k || typeof k !== 'object') throw bad();
    const cls = k.class === undefined || k.class === null ? DNS_CLASS_IN : uint16(k.class);
    const type = uint16(k.type);
    const labels = typeof k.name === 'string' ? dnsLabels(k.name) : undefined;
    if (cls === undefined || type === undefined || !labels) throw bad();
    return { class: cls, type, name: k.name, labels };
  });
}

/** The machine's addresses, or the error machined's address lookup fails the call with. */
async function addressesOf(m: Machine): Promise<MachineAddress[]> {
  const r = await machineAddresses(m);
  if (r.ok) return r.value;
  const e = r.error;
  if ('errno' in e) throw new SystemError(e.errno);
  if ('error' in e && e.error === 'io.systemd.Machine.NoPrivateNetworking') throw new SystemError(ENONET);
  if ('error' in e && e.error === 'io.systemd.Machine.NotAvailable') throw new SystemError(EOPNOTSUPP);
  throw new SystemError(Errno.EIO);
}

async function resolveRecord(registry: Registry, params: ResolveRecordParameters): Promise<ResolveRecordResult> {
  const keys = parseQuestion(params.question);
  const answer: Answer[] = [];
  const known = new Map<string, MachineAddress[]>();
  let found = false;
  let below = false;
  for (const key of keys) {
    const m = registry.get(key.name);
    if (m && m.name === key.name) {
      found = true;
      const family = key.type === DNS_TYPE_A ? AF_INET : key.type === DNS_TYPE_AAAA ? AF_INET6 : 0;
      if (key.class === DNS_CLASS_IN && family) {
        let list = known.get(m.name);
        if (!list) known.set(m.name, (list = await addressesOf(m)));
        for (const a of list) {
          if (a.family !== family) continue;
          const raw = addressRecordWire(m.name, key.type, a.address).toString('base64');
          answer.push({ rr: { key: { class: DNS_CLASS_IN, type: key.type, name: m.name }, address: a.address }, raw });
        }
      }
    }
    if (!below) below = parentDomains(key.labels).some((p) => registry.get(p)?.name === p);
  }
  if (found) return { rcode: DNS_RCODE_SUCCESS, answer };
  if (below) return { rcode: DNS_RCODE_NXDOMAIN };
  return {};
}

export function resolveHookApi(registry: Registry): Handlers<IoSystemdResolveHookMethods> {
  return {
    QueryFilter: (_params, call: Call) => (call.more ? new Replies(filterUpdates(registry, call.signal), undefined, true) : filter(registry)),
    ResolveRecord: (params) => resolveRecord(registry, params),
  };
}
