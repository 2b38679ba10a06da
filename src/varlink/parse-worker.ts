/**
 * The worker half of parsing large messages away from the event loop (see offload.ts).
 *
 * JSON.parse of a hostile 16 MiB message (a million keys, arrays nested two thousand deep) takes a
 * second or two, and on the event loop every other client would wait that long. A server given a
 * worker module hands each large message to it instead. The worker does everything the event loop
 * would have done before running the handler: the UTF-8 check, sd-varlink's JSON rules, the header,
 * duplicate keys, and the method's parameter validator. What comes back is small: a reason to drop
 * the connection, the name of the refused parameter, or, for a call that passed, its text, which the
 * event loop parses once more only because the handler needs the values.
 *
 * An application writes a module of its own that calls `serveParseWorker` with every interface it
 * implements (the validators are code, and code cannot be posted to a worker), and passes that
 * module's URL as the server's `parseWorker` option. org.varlink.service and io.systemd.service are
 * added here.
 */
import { parentPort } from 'node:worker_threads';
import { parseCallBytes } from './call-parser.js';
import { parameterName } from './parameter-name.js';
import type { InterfaceDescriptor, MethodDescriptor } from './interface.js';
import { OrgVarlinkService } from './builtin/generated/org.varlink.service.js';
import { IoSystemdService } from './builtin/generated/io.systemd.service.js';

export interface ParseRequest {
  id: number;
  bytes: Uint8Array;
}

/** The call's header, as IncomingCall carries it. */
export interface CallHeader {
  method: string;
  oneway: boolean;
  more: boolean;
  upgrade: boolean;
  duplicate?: string;
}

export type ParseResponse =
  | { id: number; drop: string }
  /** The validator refused this top-level parameter. */
  | { id: number; header: CallHeader; invalid: string }
  /** Passed the validator (`checked`), or the worker does not know the method or stopped short of validating (a duplicate key). */
  | { id: number; header: CallHeader; text: string; checked: boolean };

/** Answers one message (exported for tests, which call it without a worker). */
export function examine(bytes: Uint8Array, methods: ReadonlyMap<string, MethodDescriptor>): Omit<ParseResponse, 'id'> {
  const parsed = parseCallBytes(bytes);
  if (typeof parsed === 'string') return { drop: parsed };
  const { call, text } = parsed;
  const header: CallHeader = { method: call.method, oneway: call.oneway, more: call.more, upgrade: call.upgrade };
  if (call.duplicate !== undefined) header.duplicate = call.duplicate;
  const d = methods.get(call.method);
  if (!d || call.duplicate !== undefined) return { header, text, checked: false };
  if (!d.validate(call.parameters)) return { header, invalid: parameterName(d.validate.errors) };
  return { header, text, checked: true };
}

/** Method table of the given interfaces plus the two every berth Varlink server serves. */
export function methodTable(interfaces: readonly InterfaceDescriptor[]): Map<string, MethodDescriptor> {
  const table = new Map<string, MethodDescriptor>();
  for (const iface of [OrgVarlinkService, IoSystemdService, ...interfaces] as InterfaceDescriptor[]) {
    for (const [name, d] of Object.entries(iface.methods)) table.set(`${iface.name}.${name}`, d);
  }
  return table;
}

/** Runs the worker: call this from the application's worker module. */
export function serveParseWorker(interfaces: readonly InterfaceDescriptor[]): void {
  if (!parentPort) throw new Error('serveParseWorker() must run in a worker thread');
  const port = parentPort;
  const methods = methodTable(interfaces);
  port.on('message', (req: ParseRequest) => {
    let res: Omit<ParseResponse, 'id'>;
    try {
      res = examine(req.bytes, methods);
    } catch (err) {
      res = { drop: `parse worker failed: ${(err as Error).message}` };
    }
    port.postMessage({ id: req.id, ...res });
  });
}
