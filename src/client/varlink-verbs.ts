/**
 * `berthctl varlink …`: a generic Varlink client that behaves like systemd's varlinkctl
 * (Debian 12 has none): info, list-interfaces, list-methods, introspect, call, validate-idl.
 */
import { readFileSync } from 'node:fs';
import { VarlinkClient } from '../varlink/client.js';
import { VarlinkError } from '../varlink/errors.js';
import { parseInterface, formatInterface, IdlError, INTERFACE_NAME, MEMBER_NAME } from '../varlink/idl/index.js';
import { formatFields, formatJson, type JsonMode } from './output.js';

export interface VarlinkVerbOptions {
  json?: JsonMode;
  more: boolean;
  oneway: boolean;
  collect: boolean;
  quiet: boolean;
  timeoutMs?: number;
  graceful: string[];
}

const out = (s: string) => process.stdout.write(s);
const err = (s: string) => process.stderr.write(s);

async function connect(address: string, o: VarlinkVerbOptions): Promise<VarlinkClient> {
  try {
    return await VarlinkClient.connect(address, o.timeoutMs !== undefined ? { timeout: o.timeoutMs } : {});
  } catch (e) {
    throw new CliError(`Failed to connect to ${address}: ${(e as Error).message}`);
  }
}

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

function isQualifiedMethod(name: string): boolean {
  const i = name.lastIndexOf('.');
  if (i <= 0) return false;
  return INTERFACE_NAME.test(name.slice(0, i)) && MEMBER_NAME.test(name.slice(i + 1));
}

async function getInfo(c: VarlinkClient): Promise<{ vendor: string; product: string; version: string; url: string; interfaces: string[] }> {
  return (await c.callRaw('org.varlink.service.GetInfo')) as never;
}

async function describe(c: VarlinkClient, iface: string): Promise<string> {
  const r = await c.callRaw('org.varlink.service.GetInterfaceDescription', { interface: iface });
  return String(r.description ?? '');
}

function readStdin(): string {
  try {
    return readFileSync(0, 'utf8');
  } catch {
    return '';
  }
}

export async function varlinkVerb(verb: string, args: string[], o: VarlinkVerbOptions): Promise<number> {
  switch (verb) {
    case 'info': {
      const [address] = need(args, 1, 'info ADDRESS');
      const c = await connect(address!, o);
      try {
        const info = await getInfo(c);
        if (o.json) out(formatJson(info, o.json) + '\n');
        else
          out(
            formatFields([
              ['Vendor', info.vendor],
              ['Product', info.product],
              ['Version', info.version],
              ['URL', info.url],
              ['Interfaces', info.interfaces],
            ]),
          );
      } finally {
        c.close();
      }
      return 0;
    }
    case 'list-interfaces': {
      const [address] = need(args, 1, 'list-interfaces ADDRESS');
      const c = await connect(address!, o);
      try {
        const info = await getInfo(c);
        if (o.json) out(formatJson(info.interfaces, o.json) + '\n');
        else for (const i of info.interfaces) out(`${i}\n`);
      } finally {
        c.close();
      }
      return 0;
    }
    case 'list-methods':
    case 'introspect': {
      const [address, ...wanted] = need(args, 1, `${verb} ADDRESS [INTERFACE…]`);
      const c = await connect(address!, o);
      try {
        const names = wanted.length ? wanted : (await getInfo(c)).interfaces;
        const texts: string[] = [];
        const methods: string[] = [];
        for (const name of names) {
          const text = await describe(c, name);
          let shown = text;
          try {
            const iface = parseInterface(text, name);
            shown = formatInterface(iface);
            for (const m of iface.members) if (m.kind === 'method') methods.push(`${iface.name}.${m.name}`);
          } catch (e) {
            err(`Failed to parse interface description of ${name}, showing it as it came: ${(e as Error).message}\n`);
          }
          texts.push(shown);
        }
        if (verb === 'introspect') {
          if (o.json) for (const t of texts) out(formatJson({ description: t }, o.json) + '\n');
          // Like varlinkctl: several interfaces are separated by two empty lines.
          else out(texts.join('\n\n'));
        } else {
          methods.sort();
          if (o.json) out(formatJson(methods, o.json) + '\n');
          else for (const m of methods) out(`${m}\n`);
        }
      } finally {
        c.close();
      }
      return 0;
    }
    case 'call':
      return call(args, o);
    case 'validate-idl': {
      const file = args[0];
      const text = file && file !== '-' ? readFileSync(file, 'utf8') : readStdin();
      try {
        const iface = parseInterface(text, file ?? '<stdin>');
        out(formatInterface(iface));
        return 0;
      } catch (e) {
        if (e instanceof IdlError) throw new CliError(e.message);
        throw e;
      }
    }
    default:
      throw new CliError(`Unknown varlink verb '${verb}'.`, 2);
  }
}

async function call(args: string[], o: VarlinkVerbOptions): Promise<number> {
  const [address, method, paramText] = need(args, 2, 'call ADDRESS METHOD [PARAMS]');
  if (!isQualifiedMethod(method!)) throw new CliError(`Not a valid qualified method name: '${method}'.`);
  const text = paramText === undefined || paramText === '-' ? readStdin() : paramText;
  let parameters: unknown = {};
  if (text.trim() !== '') {
    try {
      parameters = JSON.parse(text);
    } catch (e) {
      throw new CliError(`Failed to parse parameters: ${(e as Error).message}`);
    }
  }
  if (typeof parameters !== 'object' || parameters === null || Array.isArray(parameters)) {
    throw new CliError('Parameters must be a JSON object.');
  }
  const json: JsonMode = o.json ?? (process.stdout.isTTY ? 'pretty' : 'short');
  const c = await connect(address!, o);
  const failed = (e: unknown): number => {
    if (e instanceof VarlinkError) {
      if (o.graceful.includes(e.error)) return 0;
      if (!o.quiet) out(formatJson(e.parameters, json) + '\n');
      err(`Method call ${method}() failed: ${e.error}\n`);
      return 1;
    }
    throw e;
  };
  try {
    if (o.oneway) {
      c.onewayRaw(method!, parameters);
      await new Promise<void>((r) => c.socket.end(r));
      return 0;
    }
    if (o.more || o.collect) {
      const collected: unknown[] = [];
      try {
        for await (const reply of c.moreRaw(method!, parameters)) {
          if (o.collect) collected.push(reply);
          else if (!o.quiet) out(`\x1e${formatJson(reply, json)}\n`);
        }
      } catch (e) {
        return failed(e);
      }
      if (o.collect && !o.quiet) out(formatJson(collected, json) + '\n');
      return 0;
    }
    try {
      const reply = await c.callRaw(method!, parameters);
      if (!o.quiet) out(formatJson(reply, json) + '\n');
      return 0;
    } catch (e) {
      return failed(e);
    }
  } finally {
    c.close();
  }
}

function need(args: string[], n: number, usage: string): string[] {
  if (args.length < n) throw new CliError(`Usage: berthctl varlink ${usage}`, 2);
  return args;
}
