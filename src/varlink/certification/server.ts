/**
 * A strict org.varlink.certification service.
 *
 * Every client id moves through the steps Start, Test01 … Test11, End in that order. Each call is
 * checked against the one the step expects: the method, every parameter value (numbers by value,
 * an absent nullable field equal to null, no extra keys), and the call's flags (Test10 must be
 * called with `more`, Test11 `oneway`, the others with neither). A mismatch is answered
 * `CertificationError {wants, got}`, each side a call object, and ends the session; an id that
 * was never handed out, has ended or has expired gets `ClientIdError`.
 *
 * Test11 is oneway, so a mismatch there cannot be answered; it is kept and End answers with it.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { Replies, type Call } from '../call.js';
import { VarlinkServer } from '../server.js';
import {
  CertificationError,
  ClientIdError,
  OrgVarlinkCertification,
  type OrgVarlinkCertificationMethods,
} from './generated/org.varlink.certification.js';
import type { Handlers } from '../call.js';
import {
  INTERFACE,
  STEPS,
  TEST01_BOOL,
  TEST02_INT,
  TEST03_FLOAT,
  TEST04_STRING,
  difference,
  test05Result,
  test06Result,
  test07Map,
  test08Set,
  test09MyType,
  test10Replies,
  type Step,
} from './expected.js';

/** A call as the error reports it: the method, its parameters and the flags that were set. */
interface CallShape {
  method: string;
  parameters: Record<string, unknown>;
  more?: true;
  oneway?: true;
}

interface Session {
  /** Index into STEPS of the step expected next. */
  next: number;
  readonly started: number;
  /** A failure that could not be answered (a oneway Test11); End reports it. */
  pending?: CertificationError;
}

export interface CertificationServiceOptions {
  /** How long a client id stays valid after Start (default 12 hours). */
  lifetimeMs?: number;
  /** Sessions kept at most; the oldest are forgotten first (default 10000). */
  maxSessions?: number;
  /** Current time in milliseconds, for tests. */
  now?: () => number;
}

/** The state of all certification sessions, and the handlers that serve them. */
export class CertificationService {
  private readonly sessions = new Map<string, Session>();
  private readonly lifetimeMs: number;
  private readonly maxSessions: number;
  private readonly now: () => number;

  constructor(options: CertificationServiceOptions = {}) {
    this.lifetimeMs = options.lifetimeMs ?? 12 * 60 * 60 * 1000;
    this.maxSessions = options.maxSessions ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  /** Number of sessions that have started and not ended (or failed). */
  get activeSessions(): number {
    return this.sessions.size;
  }

  readonly handlers: Handlers<OrgVarlinkCertificationMethods> = {
    Start: (params, call) => {
      this.prune();
      this.check(call, params, {});
      const id = randomBytes(16).toString('hex');
      this.sessions.set(id, { next: STEPS.indexOf('Test01'), started: this.now() });
      return { client_id: id };
    },
    Test01: (p, call) => {
      this.enter('Test01', p, call);
      return { bool: TEST01_BOOL };
    },
    Test02: (p, call) => {
      this.enter('Test02', p, call);
      return { int: TEST02_INT };
    },
    Test03: (p, call) => {
      this.enter('Test03', p, call);
      return { float: TEST03_FLOAT };
    },
    Test04: (p, call) => {
      this.enter('Test04', p, call);
      return { string: TEST04_STRING };
    },
    Test05: (p, call) => {
      this.enter('Test05', p, call);
      return test05Result();
    },
    Test06: (p, call) => {
      this.enter('Test06', p, call);
      return test06Result();
    },
    Test07: (p, call) => {
      this.enter('Test07', p, call);
      return { map: test07Map() };
    },
    Test08: (p, call) => {
      this.enter('Test08', p, call);
      return { set: test08Set() };
    },
    Test09: (p, call) => {
      this.enter('Test09', p, call);
      return { mytype: test09MyType() };
    },
    Test10: (p, call) => {
      this.enter('Test10', p, call);
      return new Replies(test10Replies().map((string) => ({ string })));
    },
    Test11: (p, call) => {
      this.enter('Test11', p, call);
      return {};
    },
    End: (p, call) => {
      const session = this.enter('End', p, call);
      // The session is over either way.
      this.sessions.delete(p.client_id);
      if (session.pending) throw session.pending;
      return { all_ok: true };
    },
  };

  /**
   * Checks that `step` is what this client id may call now, with exactly these parameters
   * (besides client_id) and the right flags; advances the session. Throws ClientIdError or
   * CertificationError.
   */
  private enter(step: Step, params: { client_id: string }, call: Call): Session {
    const id = params.client_id;
    const session = this.sessions.get(id);
    if (!session || this.expired(session)) {
      this.sessions.delete(id);
      throw new ClientIdError();
    }
    const expected = STEPS[session.next]!;
    if (expected !== step) {
      this.sessions.delete(id);
      const wants = expectedCall(expected, { client_id: id, ...wantedParameters(expected) });
      call.log.info({ wants: wants.method }, 'certification step out of order');
      throw new CertificationError({ wants: { ...wants }, got: { ...shapeOf(call, params) } });
    }
    try {
      this.check(call, params, { client_id: id, ...wantedParameters(step) });
    } catch (err) {
      if (step === 'Test11' && call.oneway) {
        // Nobody hears the error of a oneway call: keep it for End.
        session.pending ??= err as CertificationError;
        session.next++;
        return session;
      }
      this.sessions.delete(id);
      throw err;
    }
    session.next++;
    return session;
  }

  /** Compares the call with what the step wants; throws CertificationError on a difference. */
  private check(call: Call, params: object, wantsParameters: Record<string, unknown>): void {
    const step = call.method.slice(INTERFACE.length + 1) as Step;
    const wants = expectedCall(step, wantsParameters);
    const got = shapeOf(call, params);
    const reason = flagMismatch(wants, call) ?? difference(wants.parameters, got.parameters);
    if (reason !== undefined) {
      call.log.info({ reason }, 'certification step failed');
      throw new CertificationError({ wants: { ...wants }, got: { ...got } });
    }
  }

  private expired(session: Session): boolean {
    return this.now() - session.started > this.lifetimeMs;
  }

  /** Forgets expired sessions, and the oldest ones beyond the limit. */
  private prune(): void {
    for (const [id, s] of this.sessions) if (this.expired(s)) this.sessions.delete(id);
    // A Map iterates in insertion order, so the first keys are the oldest sessions.
    for (const id of this.sessions.keys()) {
      if (this.sessions.size < this.maxSessions) break;
      this.sessions.delete(id);
    }
  }
}

/** The call a step expects, as a call object. */
function expectedCall(step: Step, parameters: Record<string, unknown>): CallShape {
  const shape: CallShape = { method: `${INTERFACE}.${step}`, parameters };
  if (step === 'Test10') shape.more = true;
  if (step === 'Test11') shape.oneway = true;
  return shape;
}

/** What is wrong with the call's flags (`more`, `oneway`, `upgrade`), if anything. */
function flagMismatch(wants: CallShape, call: Call): string | undefined {
  if (call.upgrade) return "'upgrade' is not expected";
  if ((wants.more ?? false) !== call.more) return wants.more ? "wants the call made with 'more'" : "'more' is not expected";
  if ((wants.oneway ?? false) !== call.oneway) return wants.oneway ? "wants the call made 'oneway'" : "'oneway' is not expected";
  return undefined;
}

/** The call as it arrived (flags that were false are left out, as on the wire). */
function shapeOf(call: Call, params: object): CallShape {
  const shape: CallShape = { method: call.method, parameters: { ...(params as Record<string, unknown>) } };
  if (call.more) shape.more = true;
  if (call.oneway) shape.oneway = true;
  return shape;
}

/** The parameters (besides client_id) a step must be called with. */
function wantedParameters(step: Step): Record<string, unknown> {
  switch (step) {
    case 'Start':
    case 'Test01':
    case 'End':
      return {};
    case 'Test02':
      return { bool: TEST01_BOOL };
    case 'Test03':
      return { int: TEST02_INT };
    case 'Test04':
      return { float: TEST03_FLOAT };
    case 'Test05':
      return { string: TEST04_STRING };
    case 'Test06':
      return { ...test05Result() };
    case 'Test07':
      return { ...test06Result() };
    case 'Test08':
      return { map: test07Map() };
    case 'Test09':
      return { set: test08Set() };
    case 'Test10':
      return { mytype: test09MyType() };
    case 'Test11':
      return { last_more_replies: test10Replies() };
  }
}

export interface CertificationServerOptions extends CertificationServiceOptions {
  logger?: Logger;
}

/** A Varlink server serving org.varlink.certification (and org.varlink.service). */
export function createCertificationServer(options: CertificationServerOptions = {}): {
  server: VarlinkServer;
  service: CertificationService;
} {
  const server = new VarlinkServer({
    vendor: 'berth',
    product: 'berth Varlink certification service',
    version: '1',
    url: 'https://varlink.org/',
    ...(options.logger ? { logger: options.logger } : {}),
  });
  const service = new CertificationService(options);
  server.implement(OrgVarlinkCertification, service.handlers);
  return { server, service };
}
