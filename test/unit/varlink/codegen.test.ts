/**
 * The generator end to end: an interface text → generated TypeScript and precompiled validators →
 * how the validators (and `parameterName`) judge parameters, whether the output type-checks,
 * and whether the committed generated files are what the generator produces today.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parameterName } from '../../../src/varlink/server.js';
import { PROJECT_SETS, generateProject } from '../../../src/varlink/codegen/cli.js';
import { typeSchema, structSchema } from '../../../src/varlink/codegen/schema.js';
import type { MethodDescriptor } from '../../../src/varlink/interface.js';
import { REPO, TEST_IDL_PATH, generateInto, loadTestInterface, type LoadedInterface } from '../../helpers/generated.js';

let iface: LoadedInterface;
beforeAll(async () => {
  iface = await loadTestInterface();
});

/** What the server would answer: undefined when valid, else the InvalidParameter's parameter. */
function judge(method: string, parameters: unknown): string | undefined {
  const d = iface.methods[method] as MethodDescriptor;
  if (d.validate(parameters)) return undefined;
  return parameterName(d.validate.errors);
}

describe('generated validators (io.berth.test)', () => {
  it('accepts valid parameters; nullable fields may be absent or null', () => {
    expect(judge('Echo', { text: 'hi' })).toBeUndefined();
    expect(judge('Echo', { text: 'hi', count: null, color: null, inner: null, list: null, map: null, flag: null })).toBeUndefined();
    expect(
      judge('Echo', {
        text: '',
        count: -3,
        ratio: 1,
        color: 'green',
        inner: { n: 1, label: 'x' },
        list: ['a', 'b'],
        map: { a: 1 },
        flag: false,
        blob: { anything: [1, { deep: true }] },
      }),
    ).toBeUndefined();
  });

  it.each([
    ['missing field', { }, 'text'],
    ['null for a non-nullable field', { text: null }, 'text'],
    ['unknown field', { text: 'x', bogus: 1 }, 'bogus'],
    ['wrong type (number for string)', { text: 5 }, 'text'],
    ['wrong type (string for bool)', { text: 'x', flag: 'yes' }, 'flag'],
    ['float for int', { text: 'x', count: 1.5 }, 'count'],
    ['non-decimal string for int', { text: 'x', count: '12a' }, 'count'],
    ['bad enum value', { text: 'x', color: 'purple' }, 'color'],
    ['enum value of the wrong type', { text: 'x', color: 1 }, 'color'],
    ['nested struct: wrong field type', { text: 'x', inner: { n: 'one' } }, 'inner'],
    ['nested struct: missing field', { text: 'x', inner: {} }, 'inner'],
    ['nested struct: unknown field', { text: 'x', inner: { n: 1, zzz: 2 } }, 'inner'],
    ['array element of the wrong type', { text: 'x', list: ['a', 2] }, 'list'],
    ['array where a string was expected', { text: ['x'] }, 'text'],
    ['map value of the wrong type', { text: 'x', map: { a: 'b' } }, 'map'],
    ['object field given an array', { text: 'x', blob: [] }, 'blob'],
    ['string for float', { text: 'x', ratio: '1.5' }, 'ratio'],
  ])('%s → InvalidParameter naming the top-level field', (_what, parameters, field) => {
    expect(judge('Echo', parameters)).toBe(field);
  });

  it('checks that parameters is an object', () => {
    expect(judge('Echo', ['x'])).toBe('');
    expect(judge('Count', 'x')).toBe('');
  });

  it('int accepts decimal strings (as sd-varlink does), and coerce turns them into numbers', () => {
    const d = iface.methods.Count as MethodDescriptor;
    for (const n of ['42', '-7', '0']) expect(judge('Count', { n })).toBeUndefined();
    const p = { n: '42' };
    d.coerce?.(p);
    expect(p).toEqual({ n: 42 });
    const echo = { text: 'x', count: '5', inner: { n: '6' } };
    expect(judge('Echo', echo)).toBeUndefined();
    (iface.methods.Echo as MethodDescriptor).coerce?.(echo);
    expect(echo).toEqual({ text: 'x', count: 5, inner: { n: 6 } });
  });

  it('coerce follows map values too, so handlers never see a string where the type says number', () => {
    const echo = { text: 'x', map: { a: '7', b: 8 } };
    expect(judge('Echo', echo)).toBeUndefined();
    (iface.methods.Echo as MethodDescriptor).coerce?.(echo);
    expect(echo).toEqual({ text: 'x', map: { a: 7, b: 8 } });
  });

  it('carries the streaming mode of each method', () => {
    expect(iface.methods.Count.more).toBe('supports');
    expect(iface.methods.Watch.more).toBe('requires');
    expect(iface.methods.Echo.more).toBe('none');
  });

  it('generates error classes with the fully qualified name and their parameters', () => {
    const Failed = iface.module.Failed as new (p: { reason: string }) => { error: string; parameters: unknown };
    const e = new Failed({ reason: 'r' });
    expect(e.error).toBe('io.berth.test.Failed');
    expect(e.parameters).toEqual({ reason: 'r' });
    expect(iface.errors.Failed).toBe(Failed);
  });

  it('describes the interface in canonical form', () => {
    expect(iface.description.startsWith('# A small interface')).toBe(true);
    expect(iface.description).toContain('interface io.berth.test\n');
    expect(iface.description).toContain("# [Requires 'more' flag]\nmethod Watch(");
  });
});

describe('schema', () => {
  it('maps IDL types to JSON Schema as sd-varlink checks them', () => {
    expect(typeSchema({ kind: 'int' })).toEqual({
      anyOf: [{ type: 'integer', minimum: -(2 ** 63), maximum: 2 ** 64 - 1 }, { type: 'string', pattern: '^-?[0-9]+$' }],
    });
    // systemd's own interfaces: any string passes the interface check; the handler decides.
    expect(typeSchema({ kind: 'int' }, 'any')).toEqual({ type: ['integer', 'string'], minimum: -(2 ** 63), maximum: 2 ** 64 - 1 });
    expect(typeSchema({ kind: 'nullable', inner: { kind: 'string' } })).toEqual({ type: ['string', 'null'] });
    expect(structSchema({ kind: 'struct', fields: [] })).toEqual({ type: 'object', properties: {}, additionalProperties: false });
  });
});

describe('parameterName', () => {
  it('names the top-level field of the first issue', () => {
    expect(parameterName([{ keyword: 'type', instancePath: '/inner/n', params: {} }])).toBe('inner');
    expect(parameterName([{ keyword: 'type', instancePath: '/list/3', params: {} }])).toBe('list');
    expect(parameterName([{ keyword: 'type', instancePath: '/text', params: {} }, { keyword: 'x', instancePath: '/other', params: {} }])).toBe('text');
  });

  it('decodes JSON pointer escapes', () => {
    expect(parameterName([{ keyword: 'type', instancePath: '/a~1b~0c/x', params: {} }])).toBe('a/b~c');
  });

  it('takes the field from required / additionalProperties issues at the top level', () => {
    expect(parameterName([{ keyword: 'required', instancePath: '', params: { missingProperty: 'name' } }])).toBe('name');
    expect(parameterName([{ keyword: 'additionalProperties', instancePath: '', params: { additionalProperty: 'zz' } }])).toBe('zz');
  });

  it('returns an empty name when nothing identifies a field', () => {
    expect(parameterName(null)).toBe('');
    expect(parameterName(undefined)).toBe('');
    expect(parameterName([])).toBe('');
    expect(parameterName([{ keyword: 'type', instancePath: '', params: { type: 'object' } }])).toBe('');
  });
});

describe('generated TypeScript', () => {
  let gen: ReturnType<typeof generateInto>;
  beforeAll(() => {
    gen = generateInto(readFileSync(TEST_IDL_PATH, 'utf8'));
  });
  afterAll(() => gen?.remove());

  it('type-checks under strict, and a missing or misspelled handler is a compile error', () => {
    const serverImport = relative(gen.dir, join(REPO, 'src/varlink/server.js'));
    const callImport = relative(gen.dir, join(REPO, 'src/varlink/call.js'));
    const clientImport = relative(gen.dir, join(REPO, 'src/varlink/client.js'));
    writeFileSync(
      join(gen.dir, 'use.ts'),
      `import { VarlinkServer } from '${serverImport}';
import { Replies, Unbound, type Handlers } from '${callImport}';
import type { VarlinkClient } from '${clientImport}';
import { IoBerthTest, Failed, type EchoParameters, type IoBerthTestMethods } from './io.berth.test.js';

const server = new VarlinkServer({ vendor: 'v', product: 'p', version: '1', url: 'u' });
const all: Handlers<IoBerthTestMethods> = {
  Echo: (p: EchoParameters) => ({ text: p.text, color: p.color }),
  Count: ({ n }: { n: number }) => new Replies([{ i: n }]),
  Watch: ({ n }: { n: number }) => new Replies([{ i: n }]),
  Fail: () => { throw new Failed({ reason: 'x' }); },
  Wait: ({ tag }: { tag: string }) => Promise.resolve({ tag }),
  Hang: () => new Promise<Record<string, never>>(() => {}),
  Peer: () => ({ uid: 0, gid: 0, pid: 1 }),
  Unbound,
  OpenFile: (_p, call) => ({ fd: call.pushFd(0) }),
  Upgrade: () => ({}),
};
server.implement(IoBerthTest, all);
const { Peer: _peer, ...missing } = all;
// @ts-expect-error Peer is missing
server.implement(IoBerthTest, missing);
// @ts-expect-error Peers is not a method (misspelled)
server.implement(IoBerthTest, { ...missing, Peers: all.Peer });
// @ts-expect-error Echo must return text: string
server.implement(IoBerthTest, { ...all, Echo: () => ({ text: 1 }) });

export async function client(c: VarlinkClient): Promise<void> {
  const t = c.proxy(IoBerthTest);
  const r = await t.Echo({ text: 'x', color: 'red' });
  const s: string = r.text;
  void s;
  // @ts-expect-error color must be one of the enum's values
  await t.Echo({ text: 'x', color: 'purple' });
  // @ts-expect-error text is required
  await t.Echo({});
  for await (const { i } of t.Count.more({ n: 3 })) { const k: number = i; void k; }
}
`,
    );
    const tsc = resolve(REPO, 'node_modules/typescript/bin/tsc');
    let output = '';
    try {
      execFileSync(
        process.execPath,
        [tsc, '--noEmit', '--strict', '--target', 'ES2022', '--module', 'NodeNext', '--moduleResolution', 'NodeNext',
          '--skipLibCheck', '--types', 'node', '--typeRoots', join(REPO, 'node_modules/@types'),
          join(gen.dir, 'use.ts'), join(gen.dir, 'io.berth.test.ts')],
        { encoding: 'utf8', stdio: 'pipe', cwd: REPO },
      );
    } catch (e) {
      const err = e as { stdout?: string; stderr?: string };
      output = `${err.stdout ?? ''}${err.stderr ?? ''}`;
    }
    expect(output).toBe('');
  }, 120_000);
});

describe('committed generated files', () => {
  it('are exactly what the generator produces now (run `npm run generate` if this fails)', () => {
    const files = generateProject(REPO);
    const stale = files.filter((f) => !existsSync(f.path) || readFileSync(f.path, 'utf8') !== f.content).map((f) => relative(REPO, f.path));
    expect(stale).toEqual([]);
  });

  it('has no leftover generated file without a .varlink source', () => {
    const expected = new Set(generateProject(REPO).map((f) => resolve(f.path)));
    const orphans: string[] = [];
    for (const [, out] of PROJECT_SETS) {
      const dir = resolve(REPO, out);
      for (const f of readdirSync(dir)) if (f.endsWith('.ts') && !expected.has(join(dir, f))) orphans.push(relative(REPO, join(dir, f)));
    }
    expect(orphans).toEqual([]);
  });

  it('and `codegen/cli.js --check` agrees (when dist is built)', (ctx) => {
    const cli = join(REPO, 'dist/src/varlink/codegen/cli.js');
    if (!existsSync(cli)) {
      console.warn(`skipped: ${cli} not built (run npm run build)`);
      ctx.skip();
    }
    let status = 0;
    let stderr = '';
    try {
      execFileSync(process.execPath, [cli, '--check'], { cwd: REPO, stdio: 'pipe', encoding: 'utf8' });
    } catch (e) {
      status = (e as { status: number }).status;
      stderr = (e as { stderr: string }).stderr;
    }
    expect({ status, stderr }).toEqual({ status: 0, stderr: '' });
  });
});
