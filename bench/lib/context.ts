/** What every scenario gets: the options of this run, the report, and the shared servers. */
import type { Report } from './report.js';
import { Berthd, Machined } from './servers.js';

export interface BenchOptions {
  quick: boolean;
  /** Scenario names or prefixes (`registry`, `userdb.uid`); empty selects everything. */
  only: string[];
}

export class BenchContext {
  /** Seconds measured per loadgen run (per round), and warm-up before it. */
  readonly duration: number;
  readonly warmup: number;
  /** Short, unique per run: machine names are `bn-<run>…` so that parallel runs cannot collide. */
  readonly run = process.pid.toString(36);
  private machinedP?: Promise<Machined>;
  private berthdP?: Promise<Berthd>;

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

  /** A berthd shared by the small scenarios (fresh runtime directory; stopped by close()). */
  berthd(): Promise<Berthd> {
    this.berthdP ??= Berthd.start();
    return this.berthdP;
  }

  async close(): Promise<void> {
    if (this.berthdP) await this.berthdP.then((b) => b.stop(), () => {});
    if (this.machinedP) await this.machinedP.then((m) => m.stopIfOurs(), () => {});
  }
}
