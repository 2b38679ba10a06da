/**
 * `--baseline REV`: builds berthd of another commit in a temporary git worktree (sharing this checkout's
 * node_modules) so that the bench runs it next to this checkout's berthd in the same run; a row whose
 * ratio against it drops shows a regression that the noise of a shared machine would hide between runs.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { Berthd, type Peer } from './servers.js';
import { REPO } from './util.js';

export interface BaselineBuild {
  rev: string;
  /** The commit's berthd bundle. */
  bundle: string;
  remove(): Promise<void>;
}

export async function buildBaseline(rev: string): Promise<BaselineBuild> {
  const commit = (await execa('git', ['rev-parse', '--verify', `${rev}^{commit}`], { cwd: REPO })).stdout.trim();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bn-baseline-'));
  const tree = path.join(dir, 'tree');
  const remove = async () => {
    await execa('git', ['worktree', 'remove', '--force', tree], { cwd: REPO, reject: false });
    fs.rmSync(dir, { recursive: true, force: true });
    await execa('git', ['worktree', 'prune'], { cwd: REPO, reject: false });
  };
  try {
    await execa('git', ['worktree', 'add', '--detach', tree, commit], { cwd: REPO });
    fs.symlinkSync(path.join(REPO, 'node_modules'), path.join(tree, 'node_modules'));
    const bin = path.join(REPO, 'node_modules/.bin');
    await execa(path.join(bin, 'tsc'), ['-p', 'tsconfig.json'], { cwd: tree });
    await execa(process.execPath, ['scripts/bundle.mjs'], { cwd: tree });
    // What that commit starts in production: berthd.cjs (code cache) where it has one, else the ES module bundle.
    const bundle = ['berthd.cjs', 'berthd.mjs'].map((f) => path.join(tree, 'dist/bin', f)).find((f) => fs.existsSync(f));
    if (!bundle) throw new Error(`${rev} built no dist/bin/berthd.cjs or berthd.mjs`);
    return { rev: `${rev} (${commit.slice(0, 10)})`, bundle, remove };
  } catch (e) {
    await remove();
    throw new Error(`cannot build baseline ${rev}: ${(e as { stderr?: string }).stderr?.trim().slice(-400) || (e as Error).message}`);
  }
}

/** A running berthd of the baseline commit, measured like a machined. */
export class BaselineBerthd implements Peer {
  readonly label = 'base';
  readonly machined = false;
  private constructor(readonly berthd: Berthd) {}

  pid(): number {
    return this.berthd.pid;
  }

  get socket(): string {
    return this.berthd.socket;
  }

  get userdbSocket(): string {
    return this.berthd.userdbSocket;
  }

  static async start(build: BaselineBuild): Promise<BaselineBerthd> {
    return new BaselineBerthd(await Berthd.start(build.bundle));
  }
}
