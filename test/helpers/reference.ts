/**
 * The real systemd 257 tools (varlinkctl, userdbctl, …) through the project's
 * scripts/reference-tools.sh, which installs them on first use. CI has no shared tools, so tests
 * ask `referenceTool()` first and skip with its reason when the tools cannot run here.
 */
import { join } from 'node:path';
import { REPO } from './generated.js';
import { run, type RunResult } from './run.js';

export const REFERENCE_SCRIPT = join(REPO, 'scripts/reference-tools.sh');

export interface ReferenceTool {
  /** Runs the tool with arguments; never throws for a non-zero exit. */
  (...args: string[]): Promise<RunResult>;
  version: string;
}

const cache = new Map<string, Promise<ReferenceTool | string>>();

/**
 * The tool, or a string saying why it cannot run. The first call may install the packages
 * (minutes on a fresh machine).
 */
export function referenceTool(name: string, { installTimeoutMs = 600_000 } = {}): Promise<ReferenceTool | string> {
  let p = cache.get(name);
  if (!p) {
    p = (async () => {
      if (process.getuid?.() !== 0) return `${name} 257 needs root to install (scripts/reference-tools.sh)`;
      let r: RunResult;
      try {
        r = await run(['bash', REFERENCE_SCRIPT, 'run', name, '--version'], { timeoutMs: installTimeoutMs });
      } catch (e) {
        return `scripts/reference-tools.sh run ${name} failed: ${(e as Error).message}`;
      }
      if (r.code !== 0) return `scripts/reference-tools.sh run ${name} --version exited ${r.code}: ${r.stderr.trim().split('\n').slice(-1)[0] ?? ''}`;
      const tool = ((...args: string[]) => run(['bash', REFERENCE_SCRIPT, 'run', name, ...args], { timeoutMs: 60_000 })) as ReferenceTool;
      tool.version = r.stdout.split('\n')[0] ?? '';
      return tool;
    })();
    cache.set(name, p);
  }
  return p;
}

/** A running systemd-machined 257 on /run/systemd/machine/, and how to put things back afterwards. */
export interface ReferenceMachined {
  /** Whether this call started it (and `release` stops it again, with the dbus-daemon it started). */
  started: boolean;
  release(): Promise<void>;
}

/**
 * Makes sure the real systemd-machined 257 answers on /run/systemd/machine/io.systemd.Machine, starting
 * it through scripts/reference-tools.sh when nothing does. Returns a string saying why it cannot.
 */
export async function ensureReferenceMachined(): Promise<ReferenceMachined | string> {
  const tool = await referenceTool('systemd-machined');
  if (typeof tool === 'string') return tool;
  const status = await run(['bash', REFERENCE_SCRIPT, 'machined', 'status'], { timeoutMs: 60_000 });
  if (status.code === 0 && status.stdout.includes('systemd-machined')) return { started: false, release: async () => undefined };
  const r = await run(['bash', REFERENCE_SCRIPT, 'machined', 'start'], { timeoutMs: 120_000 });
  if (r.code !== 0) return `scripts/reference-tools.sh machined start failed: ${r.stderr.trim().split('\n').slice(-1)[0] ?? ''}`;
  return {
    started: true,
    release: async () => {
      await run(['bash', REFERENCE_SCRIPT, 'machined', 'stop'], { timeoutMs: 60_000 });
    },
  };
}
