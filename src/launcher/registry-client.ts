/**
 * Registration of a launched machine with the registry (berthd or systemd-machined ≥ 256) over Varlink.
 * `varlinkCall` is the single place that speaks the wire format, so it can be swapped for the project's
 * typed client (src/varlink/client.ts) without touching the callers.
 */
import net from 'node:net';

export class VarlinkCallError extends Error {
  override name = 'VarlinkCallError';
  constructor(readonly error: string, readonly parameters: Record<string, unknown>) {
    super(`${error}${Object.keys(parameters).length ? ` ${JSON.stringify(parameters)}` : ''}`);
  }
}

/** One call, one reply: NUL-terminated JSON over AF_UNIX SOCK_STREAM. Connection errors reject as-is. */
export function varlinkCall(socketPath: string, method: string, parameters: object, timeoutMs = 5000): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const s = net.connect(socketPath);
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => { s.destroy(); reject(new Error(`${method}: no reply from ${socketPath} within ${timeoutMs} ms`)); }, timeoutMs);
    const done = (f: () => void): void => { clearTimeout(timer); s.destroy(); f(); };
    s.on('error', (e) => done(() => reject(e)));
    s.on('connect', () => s.write(JSON.stringify({ method, parameters }) + '\0'));
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      const i = buf.indexOf(0);
      if (i < 0) return;
      let reply: { error?: string; parameters?: Record<string, unknown> };
      try { reply = JSON.parse(buf.subarray(0, i).toString('utf8')); } catch (e) { done(() => reject(e)); return; }
      done(() => reply.error ? reject(new VarlinkCallError(reply.error, reply.parameters ?? {})) : resolve(reply.parameters ?? {}));
    });
    s.on('end', () => done(() => reject(new Error(`${method}: ${socketPath} closed the connection without a reply`))));
  });
}

export function machineSocketPath(runtimeDir: string): string {
  return `${runtimeDir.replace(/\/+$/, '')}/systemd/machine/io.systemd.Machine`;
}

export interface Registration {
  name: string;
  id: string; // 32 hex digits
  class: 'container' | 'vm';
  service: string;
  leader: number;
  rootDirectory?: string;
  ifIndices?: number[];
  vSockCid?: number;
  sshAddress?: string;
  sshPrivateKeyPath?: string;
}

export type RegisterMode = 'yes' | 'no' | 'auto';

/** True when the reason is "nobody is listening there" (what --register=auto tolerates). */
export function isRegistryAbsent(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException)?.code;
  return code === 'ENOENT' || code === 'ECONNREFUSED';
}

/** Register; returns false when mode is auto and no registry runs. Throws otherwise. */
export async function registerMachine(socketPath: string, r: Registration, mode: RegisterMode): Promise<boolean> {
  if (mode === 'no') return false;
  const params: Record<string, unknown> = { ...r, allocateUnit: false };
  for (const k of Object.keys(params)) if (params[k] === undefined) delete params[k];
  try {
    await varlinkCall(socketPath, 'io.systemd.Machine.Register', params);
    return true;
  } catch (e) {
    if (mode === 'auto' && isRegistryAbsent(e)) return false;
    if (isRegistryAbsent(e)) throw new Error(`no machine registry at ${socketPath} (start berthd, or pass --register=no)`);
    throw e;
  }
}

export async function unregisterMachine(socketPath: string, name: string): Promise<void> {
  try {
    await varlinkCall(socketPath, 'io.systemd.Machine.Unregister', { name });
  } catch (e) {
    if (isRegistryAbsent(e)) return;
    if (e instanceof VarlinkCallError && e.error === 'io.systemd.Machine.NoSuchMachine') return;
    throw e;
  }
}
