/**
 * The real systemd tools (varlinkctl, userdbctl, …) through the project's scripts/reference-tools.sh,
 * which installs them on first use: systemd 257 (Debian trixie) by default, systemd 262 (Debian sid)
 * through the `…262` helpers or `{ suite: 'sid' }`, each in its own folder. CI has no shared tools, so
 * tests ask `referenceTool()` first and skip with its reason when the tools cannot run here.
 */
import { join } from 'node:path';
import { REPO } from './generated.js';
import { run, type RunResult } from './run.js';

export const REFERENCE_SCRIPT = join(REPO, 'scripts/reference-tools.sh');

/** The Debian suites reference-tools.sh installs, and the systemd version each one brings. */
export type ReferenceSuite = 'trixie' | 'sid';
const VERSION: Record<ReferenceSuite, string> = { trixie: '257', sid: '262' };

export interface ReferenceTool {
  /** Runs the tool with arguments; never throws for a non-zero exit. */
  (...args: string[]): Promise<RunResult>;
  version: string;
}

const cache = new Map<string, Promise<ReferenceTool | string>>();

/** The environment of a reference-tools.sh run for a suite (its own default folder unless trixie). */
function suiteEnv(suite: ReferenceSuite): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, BERTH_REFERENCE_SUITE: suite };
  if (suite !== 'trixie') delete env.BERTH_REFERENCE_ROOT;
  return env;
}

/**
 * The tool, or a string saying why it cannot run. The first call may install the packages
 * (minutes on a fresh machine).
 */
export function referenceTool(
  name: string,
  { installTimeoutMs = 600_000, suite = 'trixie' }: { installTimeoutMs?: number; suite?: ReferenceSuite } = {},
): Promise<ReferenceTool | string> {
  const key = `${suite}/${name}`;
  let p = cache.get(key);
  if (!p) {
    const env = suiteEnv(suite);
    const label = `${name} ${VERSION[suite]}`;
    p = (async () => {
      if (process.getuid?.() !== 0) return `${label} needs root to install (scripts/reference-tools.sh)`;
      let r: RunResult;
      try {
        r = await run(['bash', REFERENCE_SCRIPT, 'run', name, '--version'], { timeoutMs: installTimeoutMs, env });
      } catch (e) {
        return `scripts/reference-tools.sh run ${name} (${suite}) failed: ${(e as Error).message}`;
      }
      if (r.code !== 0) return `scripts/reference-tools.sh run ${name} --version (${suite}) exited ${r.code}: ${r.stderr.trim().split('\n').slice(-1)[0] ?? ''}`;
      const tool = ((...args: string[]) => run(['bash', REFERENCE_SCRIPT, 'run', name, ...args], { timeoutMs: 60_000, env })) as ReferenceTool;
      tool.version = r.stdout.split('\n')[0] ?? '';
      return tool;
    })();
    cache.set(key, p);
  }
  return p;
}

/** A systemd 262 tool (Debian sid build), or why it cannot run. */
export const referenceTool262 = (name: string, opts: { installTimeoutMs?: number } = {}): Promise<ReferenceTool | string> =>
  referenceTool(name, { ...opts, suite: 'sid' });

/** A running systemd-machined on /run/systemd/machine/, and how to put things back afterwards. */
export interface ReferenceMachined {
  /** Whether this call started it (and `release` stops it again, with the dbus-daemon it started). */
  started: boolean;
  release(): Promise<void>;
}

/**
 * Makes sure the real systemd-machined of `suite` (257 by default) answers on
 * /run/systemd/machine/io.systemd.Machine, starting it through scripts/reference-tools.sh when nothing
 * does. Returns a string saying why it cannot, e.g. when a machined of the other version already serves
 * the socket (run the 262 tests in a mount namespace of their own, with a tmpfs on /run/systemd).
 */
export async function ensureReferenceMachined({ suite = 'trixie' }: { suite?: ReferenceSuite } = {}): Promise<ReferenceMachined | string> {
  const tool = await referenceTool('systemd-machined', { suite });
  if (typeof tool === 'string') return tool;
  const env = suiteEnv(suite);
  const status = await run(['bash', REFERENCE_SCRIPT, 'machined', 'status'], { timeoutMs: 60_000, env });
  if (status.code === 0 && status.stdout.includes('systemd-machined')) {
    // "systemd-machined 262 (262.1-1) answers on …"; an older script printed no version (257's).
    const running = /systemd-machined (\d+)/.exec(status.stdout)?.[1] ?? '257';
    if (running !== VERSION[suite]) return `systemd-machined ${running} already serves /run/systemd/machine, not ${VERSION[suite]}`;
    return { started: false, release: async () => undefined };
  }
  const r = await run(['bash', REFERENCE_SCRIPT, 'machined', 'start'], { timeoutMs: 120_000, env });
  if (r.code !== 0) return `scripts/reference-tools.sh machined start (${suite}) failed: ${r.stderr.trim().split('\n').slice(-1)[0] ?? ''}`;
  return {
    started: true,
    release: async () => {
      await run(['bash', REFERENCE_SCRIPT, 'machined', 'stop'], { timeoutMs: 60_000, env });
    },
  };
}

/** The real systemd-machined 262 (see ensureReferenceMachined). */
export const ensureReferenceMachined262 = (): Promise<ReferenceMachined | string> => ensureReferenceMachined({ suite: 'sid' });
