/**
 * Timing of container starts and stops, for `npm run bench` and the timing test: start a tree N times
 * through the Supervisor and collect spawn → READY=1 and stop → cleaned-up durations.
 */
import { PassThrough } from 'node:stream';
import { Supervisor } from '../supervisor.js';
import type { ContainerOptions } from './options.js';
import { newUuid } from '../../domain/id128.js';
import { SIGRTMIN_PLUS_3 } from '../../domain/signals.js';
import { parsePrivateUsers } from '../uid-range.js';

export interface ContainerTimings { readyMs: number[]; stopMs: number[]; exitCodes: number[] }

export function percentile(values: number[], p: number): number {
  if (!values.length) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

/** Start and stop `directory` `runs` times; `command` must report READY=1 from PID 1 and stop on SIGRTMIN+3. */
export async function measureContainer(o: {
  directory: string; runtimeDir: string; command: string[]; runs: number; name?: string; boot?: boolean; privateUsers?: string;
}): Promise<ContainerTimings> {
  const out: ContainerTimings = { readyMs: [], stopMs: [], exitCodes: [] };
  for (let i = 0; i < o.runs; i++) {
    const options: ContainerOptions = {
      directory: o.directory, name: o.name ?? 'bench-ct', uuid: newUuid(), boot: o.boot ?? false, command: o.command,
      privateUsers: parsePrivateUsers(o.privateUsers ?? 'pick'), binds: [], setenv: [], credentials: [], linkJournal: 'no',
      networkVeth: false, register: 'no', runtimeDir: o.runtimeDir, notifyReady: true, ttys: [], listenFds: [],
      killSignal: SIGRTMIN_PLUS_3, quiet: true, hostJournalDir: '/var/log/journal', consoleOutput: new PassThrough().resume(),
    };
    const sup = await Supervisor.start(options, { readyTimeoutMs: 30_000 });
    out.readyMs.push(sup.timings.readyMs!);
    const info = await sup.stop(10_000);
    out.stopMs.push(sup.timings.stopMs!);
    out.exitCodes.push(info.code);
  }
  return out;
}
