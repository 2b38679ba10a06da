/**
 * berthctl `poweroff|reboot|pause|resume NAME…` for any registered machine, as machinectl 262 does them:
 * the machine's record (io.systemd.Machine.List) names its controlAddress, and the verb is a call of
 * io.systemd.MachineInstance there; a control socket that does not answer is an error, never a fallback.
 * A machine without one gets what machined sends through D-Bus: SIGRTMIN+4 (poweroff) or SIGINT (reboot)
 * to its leader (io.systemd.Machine.Kill); pause and resume need a control socket.
 * A machine with a NAME.berth configuration that berthd's launch service runs keeps the configured
 * meaning of poweroff and reboot (io.berth.Launcher: stop cleanly; stop and start again).
 */
import os from 'node:os';
import { VarlinkClient } from '../varlink/client.js';
import { VarlinkError } from '../varlink/errors.js';
import { IoSystemdMachine } from '../generated/io.systemd.Machine.js';
import { IoBerthLauncher } from '../generated/io.berth.Launcher.js';
import { IoSystemdMachineInstance } from '../generated/io.systemd.MachineInstance.js';
import { POWEROFF_SIGNAL, REBOOT_SIGNAL } from '../domain/power-signals.js';
import { CliError } from './varlink-verbs.js';
import { EXIT, refuseBadMachineNames } from './machine-verbs.js';
import { explainLauncherError } from './configured-machine-verbs.js';

export const INSTANCE_VERBS = new Set(['poweroff', 'reboot', 'pause', 'resume']);

export interface InstanceVerbOptions {
  address: string;
  quiet: boolean;
}

type Verb = 'poweroff' | 'reboot' | 'pause' | 'resume';

const METHOD = { poweroff: 'PowerOff', reboot: 'Reboot', pause: 'Pause', resume: 'Resume' } as const;
/** What machined's D-Bus PowerOff/Reboot (machinectl before 262) send to a container's leader. */
const SIGNAL = { poweroff: POWEROFF_SIGNAL, reboot: REBOOT_SIGNAL } as const;
const DOING = { poweroff: 'power off', reboot: 'reboot', pause: 'pause', resume: 'resume' } as const;
/** Launcher answers that mean "not one of mine": the machine is then acted on as any registered one. */
const NOT_CONFIGURED = new Set([
  'io.berth.Launcher.NoSuchConfiguration', 'io.berth.Launcher.NotLaunched',
  'org.varlink.service.InterfaceNotFound', 'org.varlink.service.MethodNotFound',
]);

/** "Connection refused", as the C library words a connect errno (machinectl prints %m). */
function errnoText(e: unknown): string {
  const code = (e as NodeJS.ErrnoException)?.code;
  const texts: Record<string, string> = {
    ENOENT: 'No such file or directory', ECONNREFUSED: 'Connection refused', EACCES: 'Permission denied',
    ENOTSOCK: 'Socket operation on non-socket', ENOTDIR: 'Not a directory', ETIMEDOUT: 'Connection timed out',
  };
  if (code && texts[code]) return texts[code];
  if (code && os.constants.errno[code as keyof typeof os.constants.errno] !== undefined) return code;
  return (e as Error)?.message ?? String(e);
}

/** Calls the method on the machine's control socket, with machinectl 262's wording when it fails. */
async function callInstance(controlAddress: string, verb: Verb): Promise<void> {
  let c: VarlinkClient;
  try {
    c = await VarlinkClient.connect({ kind: 'unix', path: controlAddress }, { interfaces: [IoSystemdMachineInstance] });
  } catch (e) {
    throw new CliError(`Failed to connect to machine control socket: ${errnoText(e)}`);
  }
  try {
    await c.proxy(IoSystemdMachineInstance)[METHOD[verb]]();
  } catch (e) {
    if (e instanceof VarlinkError) throw new CliError(`Machine control call failed: ${e.error}`);
    throw new CliError(`Machine control call failed: ${(e as Error).message}`);
  } finally {
    c.close();
  }
}

/** The configured-machine meaning, when berthd's launch service runs NAME; false when it is not one of its machines. */
async function viaLauncher(c: VarlinkClient, verb: 'poweroff' | 'reboot', name: string, o: InstanceVerbOptions): Promise<VarlinkError | true> {
  const l = c.proxy(IoBerthLauncher);
  try {
    if (verb === 'poweroff') await l.Poweroff({ name });
    else {
      const r = await l.Reboot({ name });
      if (!o.quiet) process.stdout.write(`${name}: running again (supervisor ${r.supervisor})\n`);
    }
    return true;
  } catch (e) {
    if (e instanceof VarlinkError && NOT_CONFIGURED.has(e.error)) return e;
    explainLauncherError(e, `Could not ${DOING[verb]} ${name}`);
  }
}

async function one(c: VarlinkClient, verb: Verb, name: string, o: InstanceVerbOptions): Promise<void> {
  const launcherSaid = verb === 'poweroff' || verb === 'reboot' ? await viaLauncher(c, verb, name, o) : undefined;
  if (launcherSaid === true) return;
  const m = c.proxy(IoSystemdMachine);
  let record;
  try {
    record = await m.List({ name });
  } catch (e) {
    if (!(e instanceof VarlinkError)) throw e;
    // A configured machine that is not running says so better than "no such machine".
    if (e.error.endsWith('.NoSuchMachine') && launcherSaid?.error === 'io.berth.Launcher.NotLaunched') explainLauncherError(launcherSaid, `Could not ${DOING[verb]} ${name}`);
    throw new CliError(`Failed to look up machine '${name}': ${e.error}`, e.error.endsWith('.NoSuchMachine') ? EXIT.noSuchMachine : EXIT.failure);
  }
  if (record.controlAddress) return callInstance(record.controlAddress, verb);
  // The host is no machine to signal (its leader is the host's init).
  if (record.class === 'host') throw new CliError(`Could not ${DOING[verb]} machine ${name}: io.systemd.Machine.NotSupported`);
  if (verb === 'pause' || verb === 'resume') throw new CliError(`Machine '${name}' does not expose a varlink control socket.`);
  try {
    await m.Kill({ name, whom: 'leader', signal: SIGNAL[verb] });
  } catch (e) {
    if (e instanceof VarlinkError) throw new CliError(`Could not ${DOING[verb]} machine ${name}: ${e.error}`, e.error.endsWith('.NoSuchMachine') ? EXIT.noSuchMachine : EXIT.failure);
    throw e;
  }
}

export async function instanceVerb(verb: string, names: string[], o: InstanceVerbOptions): Promise<number> {
  if (!INSTANCE_VERBS.has(verb)) throw new CliError(`Unknown verb '${verb}'.`, EXIT.usage);
  if (names.length === 0) throw new CliError(`Usage: berthctl ${verb} NAME…`, EXIT.usage);
  refuseBadMachineNames(names, 'lookup');
  let c: VarlinkClient;
  try {
    c = await VarlinkClient.connect(o.address, { interfaces: [IoSystemdMachine, IoBerthLauncher], timeout: 0 });
  } catch (e) {
    throw new CliError(`Failed to connect to ${o.address}: ${(e as Error).message}`);
  }
  try {
    for (const name of names) await one(c, verb as Verb, name, o);
    return EXIT.ok;
  } finally {
    c.close();
  }
}
