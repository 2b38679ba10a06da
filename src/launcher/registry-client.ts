/**
 * Registration of a launched machine with the registry (berthd or systemd-machined ≥ 256), through the
 * typed client generated from the io.systemd.Machine interface berthd implements: one connection per call,
 * closed after its reply. Registry errors come back as the generated error classes.
 */
import { VarlinkClient, type Proxy } from '../varlink/client.js';
import { IoSystemdMachine, NoSuchMachine, type IoSystemdMachineMethods, type RegisterParameters } from '../generated/io.systemd.Machine.js';

/** How long a call to the registry may take. */
const REGISTRY_TIMEOUT_MS = 5000;

/** What the launcher registers: Register's parameters, with the ones it always sends required. */
export type Registration = Omit<RegisterParameters, 'allocateUnit' | 'class' | 'leader'> & {
  /** 32 hex digits */
  id: string;
  class: 'container' | 'vm';
  service: string;
  leader: number;
};

export type RegisterMode = 'yes' | 'no' | 'auto';

/** True when the reason is "nobody is listening there" (what --register=auto tolerates). */
export function isRegistryAbsent(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException)?.code;
  return code === 'ENOENT' || code === 'ECONNREFUSED';
}

/** Connects to the registry at `socketPath`, makes the calls of `use`, and closes the connection. */
async function withRegistry<T>(socketPath: string, use: (machine: Proxy<IoSystemdMachineMethods>) => Promise<T>): Promise<T> {
  const client = await VarlinkClient.connect({ kind: 'unix', path: socketPath }, { timeout: REGISTRY_TIMEOUT_MS });
  try {
    return await use(client.proxy(IoSystemdMachine));
  } finally {
    client.close();
  }
}

/** Register; returns false when mode is auto and no registry runs. Throws otherwise. */
export async function registerMachine(socketPath: string, r: Registration, mode: RegisterMode): Promise<boolean> {
  if (mode === 'no') return false;
  // The leader was placed in a scope of the launcher's own: the registry must not allocate one.
  const parameters: RegisterParameters = { ...r, allocateUnit: false };
  try {
    await withRegistry(socketPath, (m) => m.Register(parameters));
    return true;
  } catch (e) {
    if (mode === 'auto' && isRegistryAbsent(e)) return false;
    if (isRegistryAbsent(e)) throw new Error(`no machine registry at ${socketPath} (start berthd, or pass --register=no)`);
    throw e;
  }
}

/** Unregister; a registry that is gone, or has forgotten the machine, is no error. */
export async function unregisterMachine(socketPath: string, name: string): Promise<void> {
  try {
    await withRegistry(socketPath, (m) => m.Unregister({ name }));
  } catch (e) {
    if (isRegistryAbsent(e) || e instanceof NoSuchMachine) return;
    throw e;
  }
}
