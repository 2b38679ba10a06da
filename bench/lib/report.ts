/**
 * The benchmark's output: one line per scenario with berth's figure, then for each server it is measured
 * against in the same run (machined 257, machined 262, a baseline commit's berthd) that server's figure
 * and berth's ratio to it, the target and PASS/MISS (INFO: reported without a target). Targets apply
 * against every machined; a baseline figure only flags a regression (REGR in the note). A MISS is a result,
 * not an error; FAIL means the scenario could not be measured (and makes the bench exit non-zero); SKIP
 * says why a scenario did not run.
 */
export type Verdict = 'PASS' | 'MISS' | 'INFO' | 'SKIP' | 'FAIL';

/** Figures of the servers berth is compared with, by column label (`257`, `262`, `base`). */
export type Figures = Record<string, number | undefined>;

export interface Row {
  scenario: string;
  berth: string;
  /** Per column label: the server's figure and berth's ratio to it. */
  peers: Record<string, { value: string; ratio: string }>;
  target: string;
  verdict: Verdict;
  note?: string;
}

/** A baseline figure this much worse than berth's counts as a regression (the host is noisy). */
const REGRESSION = 0.85;

const LABELS: Record<string, string> = { '257': 'machined 257', '262': 'machined 262', base: 'baseline' };

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

function peerCells(berth: number, peers: Figures, format: (v: number) => string): Row['peers'] {
  const out: Row['peers'] = {};
  for (const [label, v] of Object.entries(peers)) {
    out[label] = v === undefined ? { value: '—', ratio: '—' } : { value: format(v), ratio: times(berth / v) };
  }
  return out;
}

/** The note's REGR remark when berth is clearly worse than the baseline commit. */
function regression(berth: number, base: number | undefined, higherIsBetter: boolean): string | undefined {
  if (base === undefined || !Number.isFinite(base) || !Number.isFinite(berth)) return undefined;
  const r = higherIsBetter ? berth / base : base / berth;
  return r < REGRESSION ? `REGR: ${times(berth / base)} of the baseline` : undefined;
}

function joinNotes(...notes: (string | undefined)[]): string | undefined {
  const n = notes.filter(Boolean);
  return n.length ? n.join('; ') : undefined;
}

export class Report {
  readonly rows: Row[] = [];
  private silenced = false;
  private labels: string[] = ['257'];

  /** After an interrupt: scenarios still unwinding must not print failures caused by the cleanup. */
  silence(): void {
    this.silenced = true;
  }

  /** Prints the column header; `labels` are the servers berth is compared with, in order. */
  header(labels: string[]): void {
    this.labels = labels;
    console.log(this.line(['scenario', 'berth', ...labels.map((l) => LABELS[l] ?? l), 'target', 'result']));
    console.log('-'.repeat(28 + 20 + 26 * labels.length + 24 + 4 + labels.length + 6));
  }

  private line(cells: string[]): string {
    const widths = [28, 20, ...this.labels.map(() => 26), 24];
    // (the separator in header() is as wide as these columns)
    return cells.map((c, i) => (i < widths.length ? c.padEnd(widths[i]!) : c)).join(' ').trimEnd();
  }

  add(row: Row): void {
    if (this.silenced) return;
    this.rows.push(row);
    const cells = this.labels.map((l) => {
      const p = row.peers[l];
      return p ? (p.ratio === '—' ? p.value : `${p.value} (${p.ratio})`) : '—';
    });
    console.log(this.line([row.scenario, row.berth, ...cells, row.target, row.verdict]) + (row.note ? `  (${row.note})` : ''));
  }

  /**
   * berth vs the others where more is better (calls/s), or less (`lowerIsBetter`: memory, latency):
   * PASS when berth/machined ≥ minRatio (≤ for less-is-better) against every machined present.
   */
  versus(
    scenario: string,
    berth: number,
    peers: Figures,
    minRatio: number,
    note?: string,
    format: (v: number) => string = rate,
    lowerIsBetter = false,
  ): void {
    const machined = Object.entries(peers).filter(([l, v]) => l !== 'base' && v !== undefined) as [string, number][];
    const ok = machined.length > 0 && machined.every(([, v]) => (lowerIsBetter ? berth / v <= minRatio : berth / v >= minRatio));
    this.add({
      scenario,
      berth: format(berth),
      peers: peerCells(berth, peers, format),
      target: `${lowerIsBetter ? '≤' : '≥'} ${minRatio}× machined`,
      verdict: ok ? 'PASS' : 'MISS',
      ...(joinNotes(regression(berth, peers.base, !lowerIsBetter), note) ? { note: joinNotes(regression(berth, peers.base, !lowerIsBetter), note) } : {}),
    });
  }

  /** An absolute target on berth's figure; the others' figures, when given, are shown for context. */
  absolute(
    scenario: string,
    o: { berth: number; peers?: Figures; format: (v: number) => string; target: number; atMost: boolean; unitText?: string; note?: string },
  ): void {
    const ok = o.atMost ? o.berth <= o.target : o.berth >= o.target;
    const note = joinNotes(regression(o.berth, o.peers?.base, !o.atMost), o.note);
    this.add({
      scenario,
      berth: o.format(o.berth),
      peers: peerCells(o.berth, o.peers ?? {}, o.format),
      target: `${o.atMost ? '≤' : '≥'} ${o.unitText ?? o.format(o.target)}`,
      verdict: ok ? 'PASS' : 'MISS',
      ...(note ? { note } : {}),
    });
  }

  /** berth against itself at a larger scale (latency; less is better): PASS when large/small ≤ maxRatio. */
  scaling(scenario: string, large: number, small: number, maxRatio: number, smallLabel: string, format = micros, note?: string): void {
    const r = large / small;
    this.add({
      scenario,
      berth: `${format(large)} (${smallLabel}: ${format(small)})`,
      peers: {},
      target: `${times(r)} ≤ ${maxRatio}× ${smallLabel}`,
      verdict: r <= maxRatio ? 'PASS' : 'MISS',
      ...(note ? { note } : {}),
    });
  }

  /** A figure that is reported without a target (others' figures and berth's ratio to them when given). */
  info(scenario: string, berth: string, peers: Record<string, string> = {}, note?: string): void {
    const cells: Row['peers'] = {};
    for (const [l, v] of Object.entries(peers)) cells[l] = { value: v, ratio: '—' };
    this.add({ scenario, berth, peers: cells, target: 'reported', verdict: 'INFO', ...(note ? { note } : {}) });
  }

  /** A figure reported without a target, compared with the others (more is better unless `lowerIsBetter`). */
  infoVersus(scenario: string, berth: number, peers: Figures, format: (v: number) => string, note?: string, lowerIsBetter = false): void {
    const n = joinNotes(regression(berth, peers.base, !lowerIsBetter), note);
    this.add({ scenario, berth: format(berth), peers: peerCells(berth, peers, format), target: 'reported', verdict: 'INFO', ...(n ? { note: n } : {}) });
  }

  skip(scenario: string, why: string): void {
    this.add({ scenario, berth: '—', peers: {}, target: '—', verdict: 'SKIP', note: why });
  }

  fail(scenario: string, why: string): void {
    const oneLine = why.replace(/\s*\n\s*/g, ' | ');
    const note = oneLine.length > 400 ? `${oneLine.slice(0, 400)}…` : oneLine;
    this.add({ scenario, berth: '—', peers: {}, target: '—', verdict: 'FAIL', note });
  }

  summary(): { failed: number } {
    const count = (v: Verdict) => this.rows.filter((r) => r.verdict === v).length;
    const regressed = this.rows.filter((r) => r.note?.includes('REGR')).length;
    console.log('');
    console.log(`${count('PASS')} pass, ${count('MISS')} miss, ${count('SKIP')} skipped, ${count('FAIL')} failed to run${regressed ? `, ${regressed} slower than the baseline` : ''}`);
    return { failed: count('FAIL') };
  }
}
