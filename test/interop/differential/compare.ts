/**
 * Running a sequence of calls against both daemons and collecting every difference, so that one run
 * reports all of them (each with the call, 257's reply and berth's) instead of stopping at the first.
 */
import { isDeepStrictEqual } from 'node:util';
import type { Reply } from '../../helpers/raw.js';
import { normalize, Pair, type Fixture } from './fixture.js';

/**
 * A difference berth makes on purpose. The step passes when both replies are equal after normalizing (a
 * host where 257 behaves differently, e.g. with systemd as PID 1), or when berth gives `berth` and 257
 * gives `real`: each a normalized reply, the list of replies of a streamed call, or a predicate on that list.
 */
export interface Deliberate {
  why: string;
  berth: unknown;
  real: unknown;
}

function matches(expected: unknown, replies: unknown): boolean {
  if (typeof expected === 'function') return Boolean((expected as (r: unknown) => unknown)(replies));
  return isDeepStrictEqual(replies, Array.isArray(expected) ? expected : [expected]);
}

/** The List fields machined 262 added; berth sends them, 257 does not know them. */
const FIELDS_SINCE_262 = ['supervisor', 'subgroup', 'controlAddress', 'UID'];

/**
 * Berth's reply as a 257 client sees the entries it knows: List entries (objects with name, class and
 * leader) without the fields 262 added. Everything else is compared as it is.
 */
export function without262Fields(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(without262Fields);
  if (v === null || typeof v !== 'object') return v;
  const o = v as Record<string, unknown>;
  const entry = 'name' in o && 'class' in o && 'leader' in o;
  return Object.fromEntries(Object.entries(o).filter(([k]) => !(entry && FIELDS_SINCE_262.includes(k))).map(([k, x]) => [k, without262Fields(x)]));
}

/**
 * The Varlink layer of 262 differs from 257's (and berth's) on the wire, not in io.systemd.Machine: a reply
 * (error or not) without parameters has no `parameters` key, and io.systemd.System carries `origin` and
 * `errnoName` beside `errno`. Replies of both sides are compared in 257's form, so these do not hide the answers.
 */
export function asVarlink257(replies: Reply[]): Reply[] {
  return replies.map((r) => {
    if (!r.error) return r.parameters === undefined ? { ...r, parameters: {} } : r;
    let parameters = r.parameters ?? {};
    if (r.error === 'io.systemd.System' && typeof parameters.errno === 'number') parameters = { errno: parameters.errno };
    return { ...r, parameters };
  });
}

export interface Step {
  label: string;
  /** The call: an object, or JSON text sent byte for byte (strings for integers, `9.0`, key order). */
  send: object | string;
  deliberate?: Deliberate;
  /** Check that the call registered nothing and wrote no state file, in either daemon. */
  leavesNothing?: boolean;
}

export interface Outcome {
  label: string;
  real: unknown;
  berth: unknown;
}

const show = (v: unknown) => {
  const s = typeof v === 'function' ? `(a check: ${String(v)})` : JSON.stringify(v) ?? String(v);
  return s.length > 600 ? `${s.slice(0, 600)}…` : s;
};

export class Comparison {
  readonly mismatches: string[] = [];
  readonly outcomes: Outcome[] = [];
  /** Deliberate differences that were actually observed. */
  readonly deliberateSeen: string[] = [];

  constructor(
    private readonly fx: Fixture,
    private readonly pair: Pair,
    private readonly pids: Map<number, string> = new Map(),
  ) {}

  private async traces(): Promise<string> {
    const parts = await Promise.all([this.fx.ourMachines(this.fx.real), this.fx.ourMachines(this.fx.berth)]);
    return JSON.stringify({
      registered: parts,
      state: [this.fx.ourStateFiles(this.fx.real), this.fx.ourStateFiles(this.fx.berth)],
    });
  }

  /** What is compared of a side's replies: normalized, in 257's Varlink form, List entries as the real version has them. */
  private view(replies: Reply[], side: 'real' | 'berth'): unknown {
    const v = normalize(asVarlink257(replies), this.pids);
    return side === 'berth' && this.fx.real.label === '257' ? without262Fields(v) : v;
  }

  async step(s: Step): Promise<Outcome> {
    const text = typeof s.send === 'string' ? s.send : JSON.stringify(s.send);
    const before = s.leavesNothing ? await this.traces() : '';
    let replies: { real: Reply[]; berth: Reply[] };
    try {
      replies = await this.pair.call(text);
    } catch (e) {
      this.mismatches.push(`${s.label}\n   call: ${show(text)}\n   failed: ${(e as Error).message}`);
      return { label: s.label, real: undefined, berth: undefined };
    }
    const real = this.view(replies.real, 'real');
    const berth = this.view(replies.berth, 'berth');
    const outcome = { label: s.label, real, berth };
    this.outcomes.push(outcome);
    if (!isDeepStrictEqual(real, berth)) {
      const d = s.deliberate;
      if (d && matches(d.berth, berth) && matches(d.real, real)) {
        this.deliberateSeen.push(`${s.label}: ${d.why}`);
      } else {
        this.mismatches.push(
          `${s.label}\n   call: ${show(text)}\n    ${this.fx.real.label}: ${show(real)}\n  berth: ${show(berth)}` +
            (d ? `\n  (deliberate difference expected: berth ${show(d.berth)}, 257 ${show(d.real)})` : ''),
        );
      }
    }
    // Key order is part of the wire form machined clients see (List, user records).
    else if (JSON.stringify(real) !== JSON.stringify(berth)) {
      this.mismatches.push(`${s.label}: same content, different key order\n    ${this.fx.real.label}: ${show(real)}\n  berth: ${show(berth)}`);
    }
    if (s.leavesNothing) {
      const after = await this.traces();
      if (after !== before) this.mismatches.push(`${s.label}: left something behind\n  before: ${before}\n   after: ${after}`);
    }
    return outcome;
  }

  /** Compares two values computed by the test itself (e.g. a filtered stream). */
  values(label: string, realValue: unknown, berthValue: unknown, deliberate?: Deliberate): void {
    const real = normalize(realValue, this.pids);
    const berth = this.fx.real.label === '257' ? without262Fields(normalize(berthValue, this.pids)) : normalize(berthValue, this.pids);
    this.outcomes.push({ label, real, berth });
    if (JSON.stringify(real) === JSON.stringify(berth)) return;
    if (deliberate && matches(deliberate.berth, [berth]) && matches(deliberate.real, [real])) {
      this.deliberateSeen.push(`${label}: ${deliberate.why}`);
      return;
    }
    this.mismatches.push(`${label}\n    ${this.fx.real.label}: ${show(real)}\n  berth: ${show(berth)}`);
  }

  async steps(list: Step[]): Promise<void> {
    for (const s of list) await this.step(s);
  }

  /** The report an assertion prints: empty when every step agreed. */
  report(): string {
    return this.mismatches.join('\n\n');
  }
}

/** Shorthand for an error reply as normalized. */
export const err = (error: string, parameters: Record<string, unknown> = {}) => ({ error, parameters });
export const invalid = (parameter: string) => err('org.varlink.service.InvalidParameter', { parameter });
export const errno = (n: number) => err('io.systemd.System', { errno: n });
