/** What every scenario gets: the options of this run, the report, and the shared servers. */
import { BaselineBerthd, type BaselineBuild } from './baseline.js';
import { Machined262 } from './machined262.js';
import type { Report } from './report.js';
import { Berthd, Machined, type Peer } from './servers.js';

export interface BenchOptions {
  quick: boolean;
  /** Scenario names or prefixes (`registry`, `userdb.uid`); empty selects everything. */
  only: string[];
  /** Also measure machined 262 (in a mount namespace of its own). */
  with262: boolean;
  /** A baseline commit's berthd, built by main. */
  baseline?: BaselineBuild;
}

export class BenchContext {
  /** Seconds measured per loadgen run (per round), and warm-up before it. */
  readonly duration: number;
  readonly warmup: number;
  /** Short, unique per run: machine names are `bn-<run>…` so that parallel runs cannot collide. */
  readonly run = process.pid.toString(36);
  private machinedP?: Promise<Machined>;
  private berthdP?: Promise<Berthd>;
  private machined262P?: Promise<Machined262>;
  private baselineP?: Promise<BaselineBerthd>;
  /** Why machined 262 is not measured (printed once in the header), when it is not. */
  missing262?: string;

  constructor(
    readonly options: BenchOptions,
    readonly report: Report,
    readonly scratch: string,
  ) {
    this.duration = options.quick ? 1 : 1.5;
    this.warmup = options.quick ? 0.2 : 0.3;
    this.rounds = options.quick ? 1 : 3;
  }

  /** berth and machined are measured alternately this many times; each figure is the median. */
  readonly rounds: number;

  get quick(): boolean {
    return this.options.quick;
  }

  /** Whether scenario NAME (e.g. `registry.list-name`) was asked for. */
  selected(name: string): boolean {
    const only = this.options.only;
    return only.length === 0 || only.some((o) => name === o || name.startsWith(`${o}.`));
  }

  anySelected(names: string[]): boolean {
    return names.some((n) => this.selected(n));
  }

  /** The real machined 257, started on first use if nothing serves /run yet. */
  machined(): Promise<Machined> {
    this.machinedP ??= Machined.ensure();
    return this.machinedP;
  }

  /** machined 262, started on first use in its own mount namespace; undefined when it cannot run. */
  async machined262(): Promise<Machined262 | undefined> {
    if (!this.options.with262) return undefined;
    this.machined262P ??= Machined262.start();
    try {
      return await this.machined262P;
    } catch (e) {
      this.missing262 = (e as Error).message;
      return undefined;
    }
  }

  /** The baseline commit's berthd (fresh runtime directory), when --baseline was given. */
  async baseline(): Promise<BaselineBerthd | undefined> {
    if (!this.options.baseline) return undefined;
    this.baselineP ??= BaselineBerthd.start(this.options.baseline);
    return this.baselineP;
  }

  /** Everything berth is measured against in this run, in column order: machined 257, 262, the baseline. */
  async peers(): Promise<Peer[]> {
    const out: Peer[] = [await this.machined()];
    const m262 = await this.machined262();
    if (m262) out.push(m262);
    const base = await this.baseline();
    if (base) out.push(base);
    return out;
  }

  /** The column labels peers() will give (for the report's header). */
  peerLabels(): string[] {
    return ['257', ...(this.options.with262 ? ['262'] : []), ...(this.options.baseline ? ['base'] : [])];
  }

  /** A berthd shared by the small scenarios (fresh runtime directory; stopped by close()). */
  berthd(): Promise<Berthd> {
    this.berthdP ??= Berthd.start();
    return this.berthdP;
  }

  async close(): Promise<void> {
    if (this.berthdP) await this.berthdP.then((b) => b.stop(), () => {});
    if (this.baselineP) await this.baselineP.then((b) => b.berthd.stop(), () => {});
    if (this.machined262P) await this.machined262P.then((m) => m.stop(), () => {});
    if (this.machinedP) await this.machinedP.then((m) => m.stopIfOurs(), () => {});
  }
}
