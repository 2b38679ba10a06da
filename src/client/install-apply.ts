/**
 * Carrying out an install or uninstall plan (install-plan.ts) step by step, undoing the steps already done
 * when one fails, so that the host is left as it was; and the real systemctl behind the plan's SystemdView.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describeStep, under, type Step, type SystemdView, type UnitState } from './install-plan.js';

export interface Runner {
  systemctl(args: string[]): void;
}

/** systemd as systemctl reports it; `root` only moves the PID-1 check (tests). */
export function realSystemd(root: string): SystemdView & Runner {
  const pid1 = fs.existsSync(under(root, '/run/systemd/system'));
  return {
    pid1,
    state(unit: string): UnitState | undefined {
      if (!pid1) return undefined;
      let out: string;
      try {
        out = execFileSync('systemctl', ['show', '--property=LoadState,UnitFileState,ActiveState', '--', unit], { encoding: 'utf8', timeout: 30_000 });
      } catch {
        return undefined;
      }
      const kv = new Map(out.split('\n').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
      const loadState = kv.get('LoadState') ?? 'not-found';
      if (loadState === 'not-found') return undefined;
      return { unit, loadState, unitFileState: kv.get('UnitFileState') ?? '', activeState: kv.get('ActiveState') ?? '' };
    },
    systemctl(args: string[]): void {
      try {
        execFileSync('systemctl', args, { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8', timeout: 90_000 });
      } catch (e) {
        const err = e as { stderr?: string; message: string };
        throw new Error(`systemctl ${args.join(' ')}: ${(err.stderr || err.message).trim()}`);
      }
    },
  };
}

/**
 * Run the steps in order; `say` gets one line per step done. On a failure every step already done is
 * undone (newest first) and the error is thrown again, naming the step.
 */
export function applySteps(root: string, steps: Step[], runner: Runner, say: (line: string) => void): void {
  const undo: (() => void)[] = [];
  try {
    for (const s of steps) {
      undo.push(applyOne(root, s, runner));
      say(describeStep(s));
    }
  } catch (e) {
    for (const u of undo.reverse()) {
      try {
        u();
      } catch {
        /* best effort: the rest is still undone */
      }
    }
    throw new Error(`${(e as Error).message}; the steps done so far were undone`);
  }
}

function applyOne(root: string, s: Step, runner: Runner): () => void {
  const p = 'path' in s ? under(root, s.path) : '';
  switch (s.kind) {
    case 'mkdir':
      fs.mkdirSync(p, { mode: 0o755 });
      return () => fs.rmdirSync(p);
    case 'write': {
      const before = saved(p);
      const tmp = path.join(path.dirname(p), `.${path.basename(p)}.berth-install`);
      fs.writeFileSync(tmp, s.content, { mode: s.mode });
      fs.chmodSync(tmp, s.mode);
      fs.renameSync(tmp, p);
      return () => restore(p, before);
    }
    case 'symlink':
      fs.symlinkSync(s.target, p);
      return () => fs.unlinkSync(p);
    case 'remove': {
      const before = saved(p);
      try {
        fs.unlinkSync(p);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      }
      return () => restore(p, before);
    }
    case 'rmdir':
      try {
        fs.rmdirSync(p);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'ENOENT' && code !== 'ENOTEMPTY' && code !== 'EEXIST') throw e;
        return () => undefined;
      }
      return () => fs.mkdirSync(p);
    case 'systemctl':
      runner.systemctl(s.args);
      return () => { if (s.undo) runner.systemctl(s.undo); };
  }
}

type Saved = { kind: 'none' } | { kind: 'file'; data: Buffer; mode: number } | { kind: 'link'; target: string };

function saved(p: string): Saved {
  try {
    const st = fs.lstatSync(p);
    if (st.isSymbolicLink()) return { kind: 'link', target: fs.readlinkSync(p) };
    return { kind: 'file', data: fs.readFileSync(p), mode: st.mode & 0o7777 };
  } catch {
    return { kind: 'none' };
  }
}

function restore(p: string, s: Saved): void {
  try {
    fs.unlinkSync(p);
  } catch {
    /* was not there */
  }
  if (s.kind === 'file') fs.writeFileSync(p, s.data, { mode: s.mode });
  else if (s.kind === 'link') fs.symlinkSync(s.target, p);
}
