/** Small helpers shared by the benchmark scenarios: paths, waiting on conditions, statistics. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (dist/bench/lib/util.js → ../../..). */
export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const DIST = path.join(REPO, 'dist');

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `cond` until it is truthy or `timeoutMs` passes; the error names what was awaited. */
export async function waitFor<T>(what: string, timeoutMs: number, cond: () => T | Promise<T>, everyMs = 20): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

export function tempDir(prefix: string, parent = os.tmpdir()): string {
  return fs.mkdtempSync(path.join(parent, prefix));
}

/**
 * Runtime directories of the berthds under test live in /run, where machined 257 keeps its state, so
 * that both write to the same file system (on some hosts /tmp is far slower for creating files).
 */
export function runtimeDir(prefix: string): string {
  return tempDir(prefix, fs.existsSync('/run') ? '/run' : os.tmpdir());
}

export function median(values: number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))]!;
}

/** Resident set size of a process in bytes, from /proc/PID/status. */
export function rssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

/** True while the process exists and is not a zombie. */
export function running(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** How many more processes the kernel will hand out PIDs for, with a margin for everyone else. */
export function pidHeadroom(): number {
  const pidMax = Number(fs.readFileSync('/proc/sys/kernel/pid_max', 'utf8'));
  let tasks = 0;
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      tasks += fs.readdirSync(`/proc/${e}/task`).length;
    } catch {
      /* gone */
    }
  }
  return pidMax - tasks;
}

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Cleanups still owed (servers started, scopes made): run by main on SIGINT/SIGTERM so that an
 * interrupted bench leaves nothing behind. Each owner removes its entry once it cleaned up itself.
 */
const pending = new Set<() => Promise<unknown>>();

export function owe(cleanup: () => Promise<unknown>): () => void {
  pending.add(cleanup);
  return () => pending.delete(cleanup);
}

export async function payAll(): Promise<void> {
  const all = [...pending];
  pending.clear();
  for (const c of all.reverse()) await c().catch(() => undefined);
}
