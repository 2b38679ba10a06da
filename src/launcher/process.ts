/**
 * Child processes on the container start path, with node:child_process (argv arrays only, never
 * a shell string). execa is used everywhere else; here its import alone (~100 ms) would be half of
 * the 200 ms budget from `berth-spawn` to READY, so the two spawns on this path use this thin
 * wrapper, which offers the part of execa's result that the launcher needs: pid, kill, stdio, and
 * awaiting the exit.
 */
import { spawn, type SpawnOptions, type ChildProcess } from 'node:child_process';

export interface Exit {
  exitCode: number | undefined;
  signal: NodeJS.Signals | undefined;
  /** Collected only when stderr is a pipe. */
  stderr: string;
}

export type Process = ChildProcess & PromiseLike<Exit>;

export function run(command: string, args: string[], options: SpawnOptions = {}): Process {
  const child = spawn(command, args, options);
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    if (stderr.length < 65536) stderr += d.toString();
  });
  const exit = new Promise<Exit>((resolve) => {
    child.once('error', () => resolve({ exitCode: undefined, signal: undefined, stderr }));
    child.once('close', (code, signal) => resolve({ exitCode: code ?? undefined, signal: signal ?? undefined, stderr }));
  });
  return Object.assign(child, { then: exit.then.bind(exit) }) as Process;
}
