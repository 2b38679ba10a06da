/**
 * Runs the C load generator (bench/loadgen.c, built into dist/bench/loadgen) and the small C helper of
 * bench/leaders.c. Throughput is measured with C clients because a Node client would be the bottleneck.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { DIST, REPO } from './util.js';

export const LOADGEN = path.join(DIST, 'bench/loadgen');
export const LEADERS = path.join(DIST, 'bench/leaders');

export interface LoadResult {
  calls: number;
  seconds: number;
  rate: number;
  p50_us: number;
  p90_us: number;
  p99_us: number;
  max_us: number;
  errors: number;
  connections: number;
  pipeline: number;
  failed_connections: number;
  /** The server's CPU time (user + system) per call, in µs, when its pid was given: steadier than rates on a busy host. */
  cpu_us?: number;
}

export interface LoadOptions {
  socket: string;
  method: string;
  /** One params object, or several that the connections cycle through. */
  params: object | object[];
  connections?: number;
  pipeline?: number;
  duration: number;
  warmup: number;
  /** Where a params file may be written. */
  scratch: string;
  /** Error replies are the expected answer (a lookup that misses), not a failure. */
  allowErrors?: boolean;
  /** The server's pid: its CPU time over the run is reported per call. */
  pid?: number;
}

/** utime + stime of a process in µs (clock ticks of 10 ms), undefined when it is gone. */
export function cpuMicros(pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) * 10_000;
  } catch {
    return undefined;
  }
}

/** Builds dist/bench/loadgen and dist/bench/leaders when missing or older than their sources. */
export async function buildTools(): Promise<void> {
  await execa('bash', [path.join(REPO, 'bench/build-loadgen.sh')], { cwd: REPO });
  const src = path.join(REPO, 'bench/leaders.c');
  const fresh = fs.existsSync(LEADERS) && fs.statSync(LEADERS).mtimeMs >= fs.statSync(src).mtimeMs;
  if (!fresh) {
    fs.mkdirSync(path.dirname(LEADERS), { recursive: true });
    await execa('gcc', ['-O2', '-Wall', '-Wextra', '-o', `${LEADERS}.tmp`, src]);
    fs.renameSync(`${LEADERS}.tmp`, LEADERS);
  }
}

let fileCounter = 0;

export async function loadgen(o: LoadOptions): Promise<LoadResult> {
  const args = ['--socket', o.socket, '--method', o.method];
  if (Array.isArray(o.params)) {
    const file = path.join(o.scratch, `params-${process.pid}-${++fileCounter}.jsonl`);
    fs.writeFileSync(file, o.params.map((p) => JSON.stringify(p)).join('\n') + '\n');
    args.push('--params-file', file);
  } else {
    args.push('--params', JSON.stringify(o.params));
  }
  args.push(
    '--connections', String(o.connections ?? 1),
    '--pipeline', String(o.pipeline ?? 1),
    '--duration', String(o.duration),
    '--warmup', String(o.warmup),
    ...(o.allowErrors ? ['--allow-errors'] : []),
  );
  const cpu0 = o.pid !== undefined ? cpuMicros(o.pid) : undefined;
  const r = await execa(LOADGEN, args, { reject: false, timeout: (o.duration + o.warmup + 30) * 1000 });
  const cpu1 = o.pid !== undefined ? cpuMicros(o.pid) : undefined;
  const line = r.stdout.trim().split('\n').pop() ?? '';
  if (r.exitCode !== 0 || !line.startsWith('{')) {
    throw new Error(`loadgen ${o.method} on ${o.socket} failed (exit ${r.exitCode}): ${r.stderr.trim() || line}`);
  }
  const result = JSON.parse(line) as LoadResult;
  // The warm-up's calls are not counted by loadgen, but its CPU time is in the difference: scale by time.
  if (cpu0 !== undefined && cpu1 !== undefined && result.calls > 0) {
    result.cpu_us = ((cpu1 - cpu0) * (result.seconds / (result.seconds + o.warmup))) / result.calls;
  }
  return result;
}

/**
 * Runs several loads in turn, `rounds` times (A B A B …), and returns for each the median of its rounds:
 * the host's other load then weighs on both sides alike instead of on whichever ran during a busy second.
 */
export async function interleaved(rounds: number, loads: LoadOptions[]): Promise<LoadResult[]> {
  const runs: LoadResult[][] = loads.map(() => []);
  for (let i = 0; i < rounds; i++) {
    for (const [j, o] of loads.entries()) runs[j]!.push(await loadgen(o));
  }
  return runs.map((rs) => {
    const mid = <K extends keyof LoadResult>(k: K) => {
      const v = rs.map((r) => r[k] as number).sort((a, b) => a - b);
      return v[v.length >> 1]!;
    };
    return {
      ...rs[0]!,
      calls: rs.reduce((s, r) => s + r.calls, 0),
      seconds: rs.reduce((s, r) => s + r.seconds, 0),
      rate: mid('rate'),
      p50_us: mid('p50_us'),
      p90_us: mid('p90_us'),
      p99_us: mid('p99_us'),
      max_us: Math.max(...rs.map((r) => r.max_us)),
      errors: rs.reduce((s, r) => s + r.errors, 0),
      ...(rs.every((r) => r.cpu_us !== undefined) ? { cpu_us: mid('cpu_us') } : {}),
    };
  });
}

/** The figures `pick` takes from each peer's result, by peer label, for Report.versus. */
export function byPeer<R>(peers: { label: string }[], results: R[], pick: (r: R) => number): Record<string, number> {
  return Object.fromEntries(peers.map((p, i) => [p.label, pick(results[i]!)]));
}

/** "p50/p99 berth vs 257 vs 262 …" for a row's note. */
export function latencies(berth: LoadResult, peers: { label: string }[], results: LoadResult[], fmt: (us: number) => string): string {
  const one = (r: LoadResult) => `${fmt(r.p50_us)}/${fmt(r.p99_us)}`;
  const cpu = (r: LoadResult) => (r.cpu_us === undefined ? '?' : r.cpu_us.toFixed(1));
  const lat = `p50/p99 ${one(berth)}${peers.map((p, i) => ` vs ${p.label} ${one(results[i]!)}`).join('')}`;
  if (berth.cpu_us === undefined) return lat;
  return `${lat}; server CPU µs/call ${cpu(berth)}${peers.map((p, i) => ` vs ${p.label} ${cpu(results[i]!)}`).join('')}`;
}
