// Registration with berthd (or any io.systemd.Machine server): one Varlink call per connection, NUL-framed
// JSON over a unix socket. Small on purpose; to be replaced by src/varlink/client.ts once that exists.

import { connect } from 'node:net';
import { join } from 'node:path';

export class VarlinkCallError extends Error {
  override name = 'VarlinkCallError';
  constructor(
    readonly method: string,
    readonly error: string,
    readonly parameters: unknown,
  ) {
    super(`${method} failed: ${error}${parameters && Object.keys(parameters as object).length ? ` ${JSON.stringify(parameters)}` : ''}`);
  }
}

/** RUNTIME/systemd/machine/io.systemd.Machine */
export function machineSocketPath(runtimeDir: string): string {
  return join(runtimeDir, 'systemd/machine/io.systemd.Machine');
}

export function varlinkCall(path: string, method: string, parameters: Record<string, unknown>, timeoutMs = 5000): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`${method}: no reply from ${path} within ${timeoutMs} ms`));
    }, timeoutMs);
    const done = (f: () => void): void => {
      clearTimeout(timer);
      s.destroy();
      f();
    };
    s.on('error', (e) => done(() => reject(e)));
    s.on('connect', () => s.write(JSON.stringify({ method, parameters }) + '\0'));
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      const i = buf.indexOf(0);
      if (i < 0) return;
      const reply = JSON.parse(buf.subarray(0, i).toString('utf8')) as { error?: string; parameters?: Record<string, unknown> };
      done(() => (reply.error ? reject(new VarlinkCallError(method, reply.error, reply.parameters)) : resolve(reply.parameters ?? {})));
    });
    s.on('close', () => done(() => reject(new Error(`${method}: ${path} closed the connection without a reply`))));
  });
}

export interface VmRegistration {
  name: string;
  /** 32 hex digits */
  id: string;
  service: string;
  leader: number;
  rootDirectory?: string;
  vSockCid?: number;
  sshAddress?: string;
  sshPrivateKeyPath?: string;
}

export function registerParameters(r: VmRegistration): Record<string, unknown> {
  const p: Record<string, unknown> = { name: r.name, id: r.id, service: r.service, class: 'vm', leader: r.leader };
  if (r.rootDirectory) p.rootDirectory = r.rootDirectory;
  if (r.vSockCid !== undefined) p.vSockCid = r.vSockCid;
  if (r.sshAddress) p.sshAddress = r.sshAddress;
  if (r.sshPrivateKeyPath) p.sshPrivateKeyPath = r.sshPrivateKeyPath;
  // the launcher made the machine's scope itself
  p.allocateUnit = false;
  return p;
}

/** Errors meaning "no registry is running" (what --register=auto tolerates). */
export function isNoRegistry(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ECONNREFUSED';
}
