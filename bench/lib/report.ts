/**
 * The benchmark's output: one line per scenario with berth's figure, machined 257's figure from the same
 * run, their ratio, the target and PASS/MISS (INFO: reported without a target). A MISS is a result, not an error; FAIL means the scenario
 * could not be measured (and makes the bench exit non-zero); SKIP says why a scenario did not run.
 */
export type Verdict = 'PASS' | 'MISS' | 'INFO' | 'SKIP' | 'FAIL';

export interface Row {
  scenario: string;
  berth: string;
  machined: string;
  ratio: string;
  target: string;
  verdict: Verdict;
  note?: string;
}

const WIDTHS = [28, 22, 22, 8, 24];

function line(cells: string[]): string {
  return cells.map((c, i) => (i < WIDTHS.length ? c.padEnd(WIDTHS[i]!) : c)).join(' ').trimEnd();
}

export function rate(callsPerSecond: number, unit = 'calls/s'): string {
  if (!Number.isFinite(callsPerSecond)) return '—';
  if (callsPerSecond >= 10_000) return `${(callsPerSecond / 1000).toFixed(1)}k ${unit}`;
  return `${Math.round(callsPerSecond)} ${unit}`;
}

export function micros(us: number): string {
  if (!Number.isFinite(us)) return '—';
  if (us >= 10_000) return `${(us / 1000).toFixed(1)} ms`;
  return `${Math.round(us)} µs`;
}

export function millis(ms: number): string {
  return Number.isFinite(ms) ? `${ms < 10 ? ms.toFixed(2) : ms.toFixed(1)} ms` : '—';
}

export function megabytes(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

export function times(r: number): string {
  return Number.isFinite(r) ? `${r.toFixed(2)}×` : '—';
}

export class Report {
  readonly rows: Row[] = [];
  private silenced = false;

  /** After an interrupt: scenarios still unwinding must not print failures caused by the cleanup. */
  silence(): void {
    this.silenced = true;
  }

  header(): void {
    console.log(line(['scenario', 'berth', 'machined 257', 'ratio', 'target', 'result']));
    console.log('-'.repeat(WIDTHS.reduce((a, b) => a + b + 1, 0) + 6));
  }

  add(row: Row): void {
    if (this.silenced) return;
    this.rows.push(row);
    console.log(line([row.scenario, row.berth, row.machined, row.ratio, row.target, row.verdict]) + (row.note ? `  (${row.note})` : ''));
  }

  /** berth vs machined where more is better (calls/s): PASS when berth/machined ≥ minRatio. */
  versus(scenario: string, berth: number, machined: number, minRatio: number, note?: string, format = rate): void {
    const r = berth / machined;
    this.add({
      scenario,
      berth: format(berth),
      machined: format(machined),
      ratio: times(r),
      target: `≥ ${minRatio}× machined`,
      verdict: r >= minRatio ? 'PASS' : 'MISS',
      ...(note ? { note } : {}),
    });
  }

  /** An absolute target on berth's figure; machined's figure, when given, is shown for context. */
  absolute(
    scenario: string,
    o: { berth: number; machined?: number; format: (v: number) => string; target: number; atMost: boolean; unitText?: string; note?: string },
  ): void {
    const ok = o.atMost ? o.berth <= o.target : o.berth >= o.target;
    this.add({
      scenario,
      berth: o.format(o.berth),
      machined: o.machined === undefined ? '—' : o.format(o.machined),
      ratio: o.machined === undefined ? '—' : times(o.berth / o.machined),
      target: `${o.atMost ? '≤' : '≥'} ${o.unitText ?? o.format(o.target)}`,
      verdict: ok ? 'PASS' : 'MISS',
      ...(o.note ? { note: o.note } : {}),
    });
  }

  /** berth against itself at a larger scale (latency; less is better): PASS when large/small ≤ maxRatio. */
  scaling(scenario: string, large: number, small: number, maxRatio: number, smallLabel: string, format = micros, note?: string): void {
    const r = large / small;
    this.add({
      scenario,
      berth: `${format(large)} (${smallLabel}: ${format(small)})`,
      machined: '—',
      ratio: times(r),
      target: `≤ ${maxRatio}× ${smallLabel}`,
      verdict: r <= maxRatio ? 'PASS' : 'MISS',
      ...(note ? { note } : {}),
    });
  }

  /** A figure that is reported without a target. */
  info(scenario: string, berth: string, machined = '—', note?: string): void {
    this.add({ scenario, berth, machined, ratio: '—', target: 'reported', verdict: 'INFO', ...(note ? { note } : {}) });
  }

  skip(scenario: string, why: string): void {
    this.add({ scenario, berth: '—', machined: '—', ratio: '—', target: '—', verdict: 'SKIP', note: why });
  }

  fail(scenario: string, why: string): void {
    const oneLine = why.replace(/\s*\n\s*/g, ' | ');
    const note = oneLine.length > 400 ? `${oneLine.slice(0, 400)}…` : oneLine;
    this.add({ scenario, berth: '—', machined: '—', ratio: '—', target: '—', verdict: 'FAIL', note });
  }

  summary(): { failed: number } {
    const count = (v: Verdict) => this.rows.filter((r) => r.verdict === v).length;
    console.log('');
    console.log(`${count('PASS')} pass, ${count('MISS')} miss, ${count('SKIP')} skipped, ${count('FAIL')} failed to run`);
    return { failed: count('FAIL') };
  }
}
