/**
 * Running a command to completion without blocking the event loop (an in-process server in the
 * same test must keep answering it), with a deadline.
 */
import { spawn } from 'node:child_process';
import { within } from './wait.js';

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function run(argv: string[], { timeoutMs = 30_000, input, env }: { timeoutMs?: number; input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], env: env ?? process.env });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdin.on('error', () => {});
  child.stdin.end(input ?? '');
  const done = new Promise<RunResult>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return within(done, timeoutMs, `${argv.join(' ')} to finish`).catch((e) => {
    child.kill('SIGKILL');
    throw e;
  });
}
