/**
 * `berthctl copy-to NAME PATH [PATH]`, `copy-from NAME PATH [PATH]` and `bind NAME PATH [PATH]`, with
 * machinectl's flags (--force to replace, --read-only, --mkdir) and words ("Failed to copy: …"), over
 * Varlink (io.systemd.Machine.CopyTo, CopyFrom, BindMount). Host paths may be relative to the working
 * directory; paths inside the machine must be absolute; a missing second path is the first one.
 */
import path from 'node:path';
import { VarlinkClient } from '../varlink/client.js';
import { socketLibc } from '../varlink/peer.js';
import { IoSystemdMachine } from '../generated/io.systemd.Machine.js';
import { CliError } from './varlink-verbs.js';
import { EXIT, refuseBadMachineNames } from './machine-verbs.js';

export const COPY_VERBS = new Set(['copy-to', 'copy-from', 'bind']);

export interface CopyVerbOptions {
  address: string;
  force: boolean;
  readOnly: boolean;
  mkdir: boolean;
}

/** A failure as machinectl words it: the errno's text for a system error, else the error's name. */
function describe(e: unknown): { text: string; code: number } {
  const err = e as { error?: string; parameters?: { errno?: number } };
  if (err.error === 'io.systemd.System' && typeof err.parameters?.errno === 'number') return { text: socketLibc().strerror(err.parameters.errno), code: EXIT.failure };
  if (err.error === 'io.systemd.Machine.NoSuchMachine') return { text: 'No such machine', code: EXIT.noSuchMachine };
  if (err.error === 'org.varlink.service.PermissionDenied') return { text: 'Access denied', code: EXIT.failure };
  if (err.error === 'io.systemd.Machine.NotSupported') return { text: 'Operation not supported', code: EXIT.failure };
  if (err.error) return { text: `${err.error}${err.parameters && Object.keys(err.parameters).length ? ` ${JSON.stringify(err.parameters)}` : ''}`, code: EXIT.failure };
  return { text: (e as Error).message, code: EXIT.failure };
}

export async function copyVerb(verb: string, args: string[], o: CopyVerbOptions): Promise<number> {
  const [name, first, second, ...extra] = args;
  if (!name || !first || extra.length) throw new CliError(`Usage: berthctl ${verb} NAME PATH [PATH]`, EXIT.usage);
  refuseBadMachineNames([name], 'lookup');
  const host = (p: string) => path.resolve(p);
  let client: VarlinkClient;
  try {
    client = await VarlinkClient.connect(o.address, { interfaces: [IoSystemdMachine] });
  } catch (e) {
    throw new CliError(`Failed to connect to ${o.address}: ${(e as Error).message}`);
  }
  const proxy = client.proxy(IoSystemdMachine);
  try {
    if (verb === 'bind') {
      const source = host(first);
      await proxy.BindMount({ name, source, destination: second ?? source, ...(o.readOnly ? { readOnly: true } : {}), ...(o.mkdir ? { mkdir: true } : {}) });
    } else if (verb === 'copy-to') {
      const source = host(first);
      await proxy.CopyTo({ name, source, destination: second ?? source, ...(o.force ? { replace: true } : {}) });
    } else {
      await proxy.CopyFrom({ name, source: first, destination: host(second ?? first), ...(o.force ? { replace: true } : {}) });
    }
    return EXIT.ok;
  } catch (e) {
    const { text, code } = describe(e);
    throw new CliError(`${verb === 'bind' ? 'Failed to bind mount' : 'Failed to copy'}: ${text}`, code);
  } finally {
    client.close();
  }
}
