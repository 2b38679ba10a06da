// org.varlink.certification, both ways, against the Go implementation (Debian package varlink-go):
// berth's client against varlink-go-certification's server, the Go client against berth's server,
// berth against berth, each over a socket path and over an abstract name (berth binds and connects
// abstract names with their exact length; Node 20 alone would pad them). Then the strict server is
// shown to refuse what a careless client sends.
import { execa, type ResultPromise } from 'execa';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connectAddress } from '../../src/varlink/address.js';
import { VarlinkClient } from '../../src/varlink/client.js';
import { VarlinkError } from '../../src/varlink/errors.js';
import { VarlinkServer } from '../../src/varlink/server.js';
import { Replies } from '../../src/varlink/call.js';
import { CertificationFailure, runCertification } from '../../src/varlink/certification/client.js';
import { createCertificationServer } from '../../src/varlink/certification/server.js';
import { test09MyType, test10Replies } from '../../src/varlink/certification/expected.js';
import {
  CertificationError,
  ClientIdError,
  OrgVarlinkCertification,
} from '../../src/varlink/certification/generated/org.varlink.certification.js';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const mainJs = join(repo, 'dist/src/varlink/certification/main.js');
const goCert = ['/usr/bin/varlink-go-certification', '/usr/local/bin/varlink-go-certification'].find((p) => existsSync(p));
const goSkip = goCert
  ? ''
  : 'varlink-go-certification is not installed (Debian package varlink-go: apt-get install varlink-go)';
if (goSkip) console.warn(`Go certification interop tests skipped: ${goSkip}`);

const DEADLINE_MS = 10_000;
let dir = '';
let serial = 0;
const children: ResultPromise[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'berth-cert-'));
  if (!existsSync(mainJs)) throw new Error(`${mainJs} is missing: run 'npm run build' first`);
});

afterEach(async () => {
  for (const child of children.splice(0)) {
    child.kill('SIGTERM');
    await child.catch(() => undefined);
  }
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** A fresh address of either kind, unique to this run. */
function address(kind: 'path' | 'abstract', tag: string): string {
  serial++;
  return kind === 'path' ? `unix:${join(dir, `${tag}-${serial}.sock`)}` : `unix:@berth-cert-test-${process.pid}-${tag}-${serial}`;
}

/** Waits until something accepts connections on the address, or fails at the deadline. */
async function waitForServer(addr: string, child: ResultPromise): Promise<void> {
  let exited = false;
  child.finally(() => (exited = true)).catch(() => undefined);
  const until = Date.now() + DEADLINE_MS;
  for (;;) {
    try {
      const { socket } = await connectAddress(addr);
      socket.destroy();
      return;
    } catch (err) {
      if (exited) throw new Error(`the server for ${addr} exited before it listened`);
      if (Date.now() > until) throw new Error(`nothing listens on ${addr} after ${DEADLINE_MS} ms: ${String(err)}`);
    }
    // Check the condition again on the next turn of the event loop (after the child's output is read).
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Starts varlink-go-certification's server and waits until it accepts connections. */
async function startGoServer(addr: string): Promise<void> {
  const child = execa(goCert as string, ['-varlink', addr], { reject: false });
  children.push(child);
  await waitForServer(addr, child);
}

/** Starts berth's certification server (the built CLI) and waits for its "Listening on" line. */
async function startBerthServer(addr: string): Promise<void> {
  const child = execa('node', [mainJs, 'serve', addr], { reject: false, buffer: false });
  children.push(child);
  await new Promise<void>((resolveReady, reject) => {
    let seen = '';
    const timer = setTimeout(() => reject(new Error(`berth's server printed no "Listening on" within ${DEADLINE_MS} ms`)), DEADLINE_MS);
    child.stdout!.on('data', (chunk: Buffer) => {
      seen += chunk.toString();
      if (seen.includes(`Listening on ${addr}\n`)) {
        clearTimeout(timer);
        resolveReady();
      }
    });
    child.then((r) => {
      clearTimeout(timer);
      reject(new Error(`berth's server exited (${r.exitCode}) before listening: ${String(r.stderr ?? '')}`));
    }, reject);
  });
}

async function berthClientCli(addr: string) {
  return execa('node', [mainJs, 'client', addr], { reject: false, timeout: 30_000 });
}

function lastLine(text: string): string {
  return text.trimEnd().split('\n').at(-1) ?? '';
}

describe.skipIf(goSkip !== '')(`berth's client against the Go server${goSkip ? ` (skipped: ${goSkip})` : ''}`, () => {
  for (const kind of ['path', 'abstract'] as const) {
    it(`passes over ${kind === 'path' ? 'a socket path' : 'an abstract name'}`, async () => {
      const addr = address(kind, 'go');
      await startGoServer(addr);
      const r = await berthClientCli(addr);
      expect(r.stderr).toBe('');
      expect(r.stdout).not.toContain('failed');
      expect(r.stdout).toMatch(/^Start: '[0-9a-f-]+'\n/);
      expect(r.stdout).toContain("  Receive: 'Reply number 10'\n");
      expect(lastLine(r.stdout)).toBe("End: 'true'");
      expect(r.exitCode).toBe(0);
    });
  }
});

describe.skipIf(goSkip !== '')(`the Go client against berth's server${goSkip ? ` (skipped: ${goSkip})` : ''}`, () => {
  for (const kind of ['path', 'abstract'] as const) {
    it(`passes over ${kind === 'path' ? 'a socket path' : 'an abstract name'}`, async () => {
      const addr = address(kind, 'berth');
      await startBerthServer(addr);
      const r = await execa(goCert as string, ['-client', '-varlink', addr], { reject: false, timeout: 30_000 });
      expect(r.stdout).not.toContain('Failed to connect');
      expect(r.stdout).not.toContain('failed');
      // Every step ran: the ten streamed replies came through and End closed the run.
      expect(r.stdout.match(/^ {2}Receive: 'Reply number \d+'$/gm)).toHaveLength(10);
      expect(lastLine(r.stdout)).toBe("End: 'true'");
    });
  }
});

describe("berth's client against berth's server", () => {
  for (const kind of ['path', 'abstract'] as const) {
    it(`passes over ${kind === 'path' ? 'a socket path' : 'an abstract name'} (both CLIs)`, async () => {
      const addr = address(kind, 'self');
      await startBerthServer(addr);
      const r = await berthClientCli(addr);
      expect(r.stdout).not.toContain('failed');
      expect(r.stdout).toMatch(/^Start: '[0-9a-f]{32}'\n/);
      expect(lastLine(r.stdout)).toBe("End: 'true'");
      expect(r.exitCode).toBe(0);
    });
  }

  it('reports a server that cannot be reached and exits non-zero', async () => {
    const r = await berthClientCli(`unix:${join(dir, 'nobody-listens.sock')}`);
    expect(r.stdout).toMatch(/^Failed to connect: /);
    expect(r.exitCode).toBe(1);
  });
});

describe('the strict server', () => {
  let server: VarlinkServer;
  let client: VarlinkClient;
  let addr: string;

  beforeAll(async () => {
    addr = address('path', 'strict');
    server = createCertificationServer().server;
    await server.listen(addr);
  });
  afterAll(async () => {
    await server.close();
  });
  afterEach(() => client?.close());

  async function connect() {
    client = await VarlinkClient.connect(addr, { timeout: 10_000 });
    return client.proxy(OrgVarlinkCertification);
  }

  /** Runs Start … Test09 correctly and returns the client id and Test09's mytype. */
  async function upToTest09(cert: Awaited<ReturnType<typeof connect>>) {
    const { client_id } = await cert.Start({});
    const { bool } = await cert.Test01({ client_id });
    const { int } = await cert.Test02({ client_id, bool });
    const { float } = await cert.Test03({ client_id, int });
    const { string } = await cert.Test04({ client_id, float });
    const r05 = await cert.Test05({ client_id, string });
    const { struct } = await cert.Test06({ client_id, ...r05 });
    const { map } = await cert.Test07({ client_id, struct });
    const { set } = await cert.Test08({ client_id, map });
    const { mytype } = await cert.Test09({ client_id, set });
    return { client_id, mytype };
  }

  async function failure(p: Promise<unknown>): Promise<VarlinkError> {
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    if (!(err instanceof VarlinkError)) throw new Error(`expected a Varlink error, got ${String(err)}`);
    return err;
  }

  it('passes berth’s own client, in process', async () => {
    const lines: string[] = [];
    await runCertification(addr, { print: (l) => lines.push(l) });
    expect(lines.at(-1)).toBe("End: 'true'");
  });

  it('answers a wrong value with CertificationError {wants, got} and forgets the client id', async () => {
    const cert = await connect();
    const { client_id } = await cert.Start({});
    await cert.Test01({ client_id });
    const err = await failure(cert.Test02({ client_id, bool: false }));
    expect(err).toBeInstanceOf(CertificationError);
    const { wants, got } = (err as CertificationError).parameters;
    expect(wants).toEqual({ method: 'org.varlink.certification.Test02', parameters: { client_id, bool: true } });
    expect(got).toEqual({ method: 'org.varlink.certification.Test02', parameters: { client_id, bool: false } });
    // The session failed: even the right value is refused now.
    expect(await failure(cert.Test02({ client_id, bool: true }))).toBeInstanceOf(ClientIdError);
  });

  it('answers an unknown client id with ClientIdError', async () => {
    const cert = await connect();
    expect(await failure(cert.Test01({ client_id: 'never-handed-out' }))).toBeInstanceOf(ClientIdError);
  });

  it('refuses a step out of order, naming the one that was due', async () => {
    const cert = await connect();
    const { client_id } = await cert.Start({});
    const err = await failure(cert.Test02({ client_id, bool: true }));
    expect(err).toBeInstanceOf(CertificationError);
    expect((err as CertificationError).parameters.wants).toMatchObject({ method: 'org.varlink.certification.Test01' });
  });

  it('compares numbers by value (1.0 is 1) and refuses a float that differs in its last digits', async () => {
    const cert = await connect();
    const { client_id } = await cert.Start({});
    await cert.Test01({ client_id });
    await cert.Test02({ client_id, bool: true });
    await cert.Test03({ client_id, int: 1 });
    // JSON.stringify never writes "1.0"; other peers do. Sent as raw text on a second connection.
    const raw = await rawCall(addr, `{"method":"org.varlink.certification.Test04","parameters":{"client_id":"${client_id}","float":1.0}}`);
    expect(raw).toEqual({ parameters: { string: 'ping' } });
    const r05 = await cert.Test05({ client_id, string: 'ping' });
    const err = await failure(cert.Test06({ client_id, ...r05, float: 3.14159265358979 }));
    expect(err).toBeInstanceOf(CertificationError);
    expect((err as CertificationError).parameters.wants).toMatchObject({ parameters: { float: 3.141592653589793 } });
  });

  it('accepts the nullable fields of MyType absent or null, and refuses a changed value in Test10', async () => {
    const cert = await connect();
    // Absent (as the Go client sends them).
    const a = await upToTest09(cert);
    const { nullable: _n, nullable_array_struct: _s, ...withoutNulls } = a.mytype;
    const repliesA: string[] = [];
    for await (const r of cert.Test10.more({ client_id: a.client_id, mytype: withoutNulls as typeof a.mytype })) repliesA.push(r.string);
    expect(repliesA).toEqual(test10Replies());
    // Explicit null (as the Python client sends them).
    const b = await upToTest09(cert);
    const explicit = { ...b.mytype, nullable: null, nullable_array_struct: null };
    const repliesB: string[] = [];
    for await (const r of cert.Test10.more({ client_id: b.client_id, mytype: explicit })) repliesB.push(r.string);
    expect(repliesB).toEqual(test10Replies());
    // The map keys capitalized, as varlink-go's server writes them: a different value.
    const c = await upToTest09(cert);
    const changed = test09MyType();
    changed.interface.foo![1] = { Foo: 'foo', Bar: 'bar' } as never;
    const err = await failure(cert.Test10.more({ client_id: c.client_id, mytype: changed }).next());
    expect(err).toBeInstanceOf(CertificationError);
  });

  it("wants Test10 called with 'more' and Test11 'oneway'", async () => {
    const cert = await connect();
    const a = await upToTest09(cert);
    const err10 = await failure(cert.Test10({ client_id: a.client_id, mytype: a.mytype }));
    expect(err10).toBeInstanceOf(CertificationError);
    expect((err10 as CertificationError).parameters.wants).toMatchObject({ more: true });
    expect((err10 as CertificationError).parameters.got).not.toHaveProperty('more');

    const b = await upToTest09(cert);
    for await (const _ of cert.Test10.more({ client_id: b.client_id, mytype: b.mytype })) void _;
    const err11 = await failure(cert.Test11({ client_id: b.client_id, last_more_replies: test10Replies() }));
    expect(err11).toBeInstanceOf(CertificationError);
    expect((err11 as CertificationError).parameters.wants).toMatchObject({ oneway: true });
  });

  it('keeps a oneway Test11 mismatch and answers End with it', async () => {
    const cert = await connect();
    const { client_id, mytype } = await upToTest09(cert);
    for await (const _ of cert.Test10.more({ client_id, mytype })) void _;
    const wrong = test10Replies().reverse();
    cert.Test11.oneway({ client_id, last_more_replies: wrong });
    const err = await failure(cert.End({ client_id }));
    expect(err).toBeInstanceOf(CertificationError);
    expect((err as CertificationError).parameters.got).toEqual({
      method: 'org.varlink.certification.Test11',
      parameters: { client_id, last_more_replies: wrong },
      oneway: true,
    });
  });

  it('refuses an extra field before the handler sees it', async () => {
    const cert = await connect();
    const { client_id } = await cert.Start({});
    const err = await failure(cert.Test01({ client_id, extra: 1 } as never));
    expect(err.error).toBe('org.varlink.service.InvalidParameter');
  });
});

describe("berth's client against a server that answers wrongly", () => {
  it('stops at the first wrong reply with "TestNN() failed"', async () => {
    const addr = address('path', 'liar');
    const honest = createCertificationServer().service.handlers;
    const server = new VarlinkServer({ vendor: 't', product: 't', version: '1', url: 'https://example.invalid/' });
    // A server whose Test02 answers 2 instead of 1.
    server.implement(OrgVarlinkCertification, { ...honest, Test02: () => ({ int: 2 }) });
    await server.listen(addr);
    try {
      const lines: string[] = [];
      const err = await runCertification(addr, { print: (l) => lines.push(l) }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(CertificationFailure);
      expect((err as CertificationFailure).step).toBe('Test02');
      expect(lines.at(-1)).toMatch(/^Test02\(\) failed: 'int': wants 1, got 2$/);
      expect(lines).not.toContain("End: 'true'");
    } finally {
      await server.close();
    }
  });

  it('fails Test10 when the stream is short', async () => {
    const addr = address('path', 'short');
    const honest = createCertificationServer().service.handlers;
    const server = new VarlinkServer({ vendor: 't', product: 't', version: '1', url: 'https://example.invalid/' });
    server.implement(OrgVarlinkCertification, {
      ...honest,
      Test10: (p, call) => {
        void (honest.Test10 as (p: unknown, c: unknown) => unknown)(p, call);
        return new Replies(test10Replies().slice(0, 9).map((string) => ({ string })));
      },
    });
    await server.listen(addr);
    try {
      const lines: string[] = [];
      const err = await runCertification(addr, { print: (l) => lines.push(l) }).catch((e: unknown) => e);
      expect((err as CertificationFailure).step).toBe('Test10');
      expect(lines.at(-1)).toMatch(/^Test10\(\) failed: /);
    } finally {
      await server.close();
    }
  });
});

/** Sends one call as raw text on a new connection and returns the parsed reply. */
async function rawCall(addr: string, text: string): Promise<unknown> {
  const { socket } = await connectAddress(addr);
  try {
    return await new Promise((resolveReply, reject) => {
      let buf = Buffer.alloc(0);
      socket.on('data', (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        const nul = buf.indexOf(0);
        if (nul !== -1) resolveReply(JSON.parse(buf.subarray(0, nul).toString()));
      });
      socket.on('error', reject);
      socket.on('close', () => reject(new Error('connection closed before a reply')));
      socket.write(`${text}\0`);
    });
  } finally {
    socket.destroy();
  }
}
