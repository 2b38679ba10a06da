/**
 * berth-spawn for a container once its command line is parsed: start the container under a Supervisor, tell
 * our own supervisor (berthd, systemd) when it runs, turn SIGINT/SIGTERM into a clean stop (a second one, or
 * SIGQUIT, kills), and return nspawn's exit code when it ends. The client (src/client/berth-spawn.ts) parses
 * the arguments.
 */
import { Supervisor } from '../supervisor.js';
import { sdNotify } from '../notify.js';
import type { ContainerOptions } from './options.js';

const PROG = 'berth-spawn';

export interface ContainerRun {
  options: ContainerOptions;
  /** how long a clean stop may take before every process of the scope is killed */
  stopTimeoutMs: number;
}

/** Runs the container to its end; returns berth-spawn's exit status. */
export async function runContainer({ options: o, stopTimeoutMs }: ContainerRun): Promise<number> {
  const say = (m: string): void => { if (!o.quiet) process.stderr.write(`${m}\n`); };

  // Signals that arrive while starting: remember them, stop once running.
  let pendingStop = false;
  let sup: Supervisor | undefined;
  let stopping = false;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (!sup) { pendingStop = true; return; }
    if (stopping || sig === 'SIGQUIT') { say('Killing the container.'); sup.kill(); return; }
    stopping = true;
    sdNotify('STOPPING=1\nSTATUS=Stopping the container.');
    say(`Container ${o.name} is being stopped (press ^C again to kill it).`);
    void sup.stop(stopTimeoutMs);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGQUIT', onSignal);
  process.on('SIGHUP', () => {});

  say(`Spawning container ${o.name} on ${o.directory}.`);
  try {
    sup = await Supervisor.start(o, { log: (m) => say(m), stopTimeoutMs });
  } catch (e) {
    if (e instanceof Error) { process.stderr.write(`${PROG}: ${e.message}\n`); return 1; }
    throw e;
  }
  say(`Container ${o.name} is running (PID 1 is ${sup.leader} on the host${sup.uidBase !== undefined ? `, UIDs ${sup.uidBase}…${sup.uidBase + 65535}` : ''}${sup.registered ? ', registered' : ''}).`);
  // Like nspawn: tell our own supervisor (berthd, systemd) that the machine is up, and who its leader is.
  sdNotify(`READY=1\nSTATUS=Container running.\nX_BERTH_LEADER_PID=${sup.leader}`);
  if (pendingStop) onSignal('SIGTERM');
  const info = await sup.wait();
  const how = info.reason === 'poweroff' ? 'powered off' : info.reason === 'reboot' ? 'rebooted'
    : info.reason === 'exit' ? `exited with status ${info.pid1Status}`
    : info.reason === 'killed' ? 'was killed after the stop timeout' : `was killed by ${info.pid1Signal}`;
  say(`Container ${o.name} ${how}.`);
  return info.code;
}
