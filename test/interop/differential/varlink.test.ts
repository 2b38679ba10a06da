// org.varlink.service and method dispatch, differential: GetInfo and GetInterfaceDescription on the
// machine, image and userdb sockets of the real systemd-machined 257 and of berthd, unknown methods and
// interfaces, and ExpectedMore. Deliberate differences, each named where it is allowed (README,
// "Architecture"):
//   - GetInfo's vendor, product, version and url are berth's own;
//   - berth serves more interfaces on the machine socket: its own namespace io.berth.* (io.berth.Machine
//     and whatever else berth adds there) and io.systemd.service (machined 257 does not serve it), so
//     their descriptions exist and Ping, GetEnvironment are answered;
//   - berth's io.systemd.Machine has MapFrom and MapTo (added upstream after 257) with their four errors;
//   - berth's io.systemd.MachineImage is 262's: SetPoolLimit, CleanPool (with CleanPoolMode) and NotSupported,
//     and the host's image is read-only in List, as 262 has it (images.test.ts and the D-Bus differential test
//     hold the rest of 262's image answers);
//   - the comments of berth's interface texts are its own words: descriptions are compared without them.
import { describe, expect, it } from 'vitest';
import { Comparison, err, invalid, type Deliberate, type Step } from './compare.js';
import { Pair, useFixture } from './fixture.js';

const { staticSkip, need } = useFixture('v', 'org.varlink.service');

const BERTH_ONLY_INTERFACES = ['io.berth.Machine', 'io.systemd.service'];
const berthOnly = (iface: string) => iface.startsWith('io.berth.') || iface === 'io.systemd.service';
const call = (method: string, parameters?: object, more = false) => ({ method, ...(parameters ? { parameters } : {}), ...(more ? { more } : {}) });
const describeIface = (iface: unknown) => call('org.varlink.service.GetInterfaceDescription', { interface: iface });
const notFound = (method: string) => err('org.varlink.service.MethodNotFound', { method });

/** GetInfo without the fields that name the product, and without berth's own interfaces. */
function comparableInfo(replies: { parameters?: Record<string, unknown> }[]): unknown {
  return replies.map((r) => {
    if (!r.parameters?.interfaces) return r;
    const { vendor: _v, product: _p, version: _ver, url: _u, ...rest } = r.parameters;
    return { ...r, parameters: { ...rest, interfaces: (rest.interfaces as string[]).filter((i) => !berthOnly(i)) } };
  });
}

/** An interface text without comment lines. */
function uncommented(replies: { parameters?: Record<string, unknown> }[]): unknown {
  return replies.map((r) =>
    typeof r.parameters?.description === 'string'
      ? { ...r, parameters: { description: r.parameters.description.split('\n').filter((l) => !/^\s*#/.test(l)).join('\n') } }
      : r,
  );
}

/** berth's io.systemd.Machine text without MapFrom, MapTo and the errors they brought. */
function without257Missing(text: string): string {
  return text
    // What 262 added to the methods 257 has (berth follows 262; machine-api-262.test.ts compares them).
    .replace(/\ntype (MachineClass|KillWhom)\([^]*?\n\)\n/g, '\n')
    .replace(/\tclass: MachineClass,/g, '\tclass: string,')
    .replace('\twhom: ?KillWhom,', '\twhom: ?string,')
    .replace(/\t(supervisor: \?int|supervisorProcessId: \?ProcessId|supervisor: \?ProcessId|controlAddress: \?string),\n/g, '')
    .replace('\tUIDShift: ?int,\n\tsubgroup: ?string,\n\tUID: ?int\n', '\tUIDShift: ?int\n')
    .replace(/\nmethod MapFrom\([^]*?\n\)\n/, '\n')
    .replace(/\nmethod MapTo\([^]*?\n\)\n/, '\n')
    .replace(/\nmethod (BindMount|CopyFrom|CopyTo|OpenRootDirectory)\([^]*?\n\)( -> \([^]*?\n\))?\n/g, '\n')
    .replace(/\nerror (NoSuchUser|NoSuchGroup|UserInHostRange|GroupInHostRange)\(\)\n/g, '\n')
    .replace(/\n{3,}/g, '\n\n')
    .replace(/\n+$/, '\n');
}

/** berth's io.systemd.MachineImage text without what 262 added. */
/** berth's io.systemd.UserDatabase without what 262 added to 257's: the filter fields and NonMatchingRecordFound. */
function withoutUserDb262(text: string): string {
  return text
    .replace(/\t(fuzzyNames|dispositionMask|uidMin|uidMax|gidMin|gidMax|uuid): \?(\[\])?(string|int),\n/g, '')
    .replace(/\nerror NonMatchingRecordFound\(\)\n?/, '\n')
    .replace(/\n{3,}/g, '\n\n')
    .replace(/\n+$/, '\n');
}

function withoutImage262(text: string): string {
  return text
    .replace(/\ntype CleanPoolMode\([^]*?\n\)\n/, '\n')
    .replace(/\nmethod (SetPoolLimit|CleanPool)\([^]*?\n\)( -> \([^]*?\n\))?\n/g, '\n')
    .replace(/\nerror NotSupported\(\)\n?/, '\n')
    .replace(/\n{3,}/g, '\n\n')
    .replace(/\n+$/, '\n');
}

/** 257 reports the host's image writable, 262 (and berth) read-only. */
const hostReadOnly262 = (real: unknown) => (berth: unknown) =>
  JSON.stringify(berth) === JSON.stringify(real).replace(/("name":"\.host","path":"\/","type":"directory","class":"machine","readOnly":)false/g, '$1true');

describe.skipIf(!!staticSkip)('org.varlink.service: 257 and berth answer alike', () => {
  it('GetInfo lists the same interfaces on every socket, apart from berth\'s own', async (ctx) => {
    const f = need(ctx);
    for (const socket of ['machineSocket', 'imageSocket', 'userdbSocket'] as const) {
      const pair = await Pair.open(f, socket);
      try {
        const c = new Comparison(f, pair);
        for (const [label, text] of [
          ['GetInfo', JSON.stringify(call('org.varlink.service.GetInfo', {}))],
          ['GetInfo without parameters', JSON.stringify(call('org.varlink.service.GetInfo'))],
          ['GetInfo with more', JSON.stringify(call('org.varlink.service.GetInfo', {}, true))],
        ] as const) {
          const { real, berth } = await pair.call(text);
          c.values(`${socket}: ${label}`, comparableInfo(real), comparableInfo(berth));
          // What is left out above must be there, and berth's extra interfaces only on the machine socket.
          expect(real[0]!.parameters?.product).toBe('systemd (systemd-machined)');
          expect(typeof berth[0]!.parameters?.version).toBe('string');
          const extra = (berth[0]!.parameters?.interfaces as string[]).filter(berthOnly);
          if (socket === 'userdbSocket') expect(extra).toEqual([]);
          else expect(extra).toEqual(expect.arrayContaining(BERTH_ONLY_INTERFACES));
        }
        await c.step({ label: `${socket}: GetInfo with a parameter`, send: call('org.varlink.service.GetInfo', { x: 1 }) });
        expect(c.report()).toBe('');
      } finally {
        pair.close();
      }
    }
  });

  it('describes the same interfaces, and no unknown ones', async (ctx) => {
    const f = need(ctx);
    const served: Record<'machineSocket' | 'userdbSocket', string[]> = {
      machineSocket: ['io.systemd.MachineImage', 'io.systemd', 'org.varlink.service'],
      userdbSocket: ['io.systemd.UserDatabase', 'io.systemd', 'org.varlink.service'],
    };
    for (const socket of ['machineSocket', 'userdbSocket'] as const) {
      const pair = await Pair.open(f, socket);
      try {
        const c = new Comparison(f, pair);
        for (const iface of served[socket]) {
          const { real, berth } = await pair.call(JSON.stringify(describeIface(iface)));
          expect(real[0]!.parameters?.description, `257 describes ${iface}`).toContain(`interface ${iface}\n`);
          const text = (r: typeof real) => (uncommented(r) as { parameters: { description: string } }[])[0]!.parameters.description;
          c.values(`${socket}: ${iface} without comments`, uncommented(real), uncommented(berth), iface === 'io.systemd.MachineImage' ? {
            why: "berth's io.systemd.MachineImage is 262's (SetPoolLimit, CleanPool, CleanPoolMode, NotSupported)",
            berth: () => withoutImage262(text(berth)) === text(real),
            real: () => true,
          } : iface === 'io.systemd.UserDatabase' ? {
            why: "berth's io.systemd.UserDatabase is 262's (the filter fields of 258+, NonMatchingRecordFound)",
            berth: () => withoutUserDb262(text(berth)) === text(real),
            real: () => true,
          } : undefined);
        }
        const unknown = ['io.nope', '', 'io.systemd.Machine.List', socket === 'machineSocket' ? 'io.systemd.UserDatabase' : 'io.systemd.Machine'];
        await c.steps([
          ...unknown.map((i): Step => ({ label: `${socket}: describe ${JSON.stringify(i)}`, send: describeIface(i) })),
          { label: `${socket}: describe, no interface`, send: call('org.varlink.service.GetInterfaceDescription', {}) },
          { label: `${socket}: describe, interface a number`, send: describeIface(5) },
          { label: `${socket}: describe, unknown key`, send: call('org.varlink.service.GetInterfaceDescription', { interface: 'io.systemd', x: 1 }) },
        ]);
        if (socket === 'machineSocket') {
          const { real, berth } = await pair.call(JSON.stringify(describeIface('io.systemd.Machine')));
          const text = (r: typeof real) => (uncommented(r) as { parameters: { description: string } }[])[0]!.parameters.description;
          c.values('io.systemd.Machine without comments', text(real), text(berth), {
            why: 'berth has MapFrom and MapTo (and their errors), added upstream after 257, 262\'s BindMount, CopyFrom, CopyTo and OpenRootDirectory, and 262\'s fields and types of Register, Kill and List',
            berth: (b: unknown[]) => without257Missing(b[0] as string) === text(real),
            real: () => true,
          });
          for (const iface of BERTH_ONLY_INTERFACES) {
            await c.step({
              label: `describe ${iface}`,
              send: describeIface(iface),
              deliberate: {
                why: `${iface} is served by berth only`,
                berth: (b: { parameters?: { description?: string } }[]) => b[0]?.parameters?.description?.includes(`interface ${iface}\n`),
                real: err('org.varlink.service.InterfaceNotFound', { interface: iface }),
              },
            });
          }
        }
        expect(c.report()).toBe('');
      } finally {
        pair.close();
      }
    }
  });

  it('answers unknown methods, extension methods and missing more as 257 does', async (ctx) => {
    const f = need(ctx);
    const onlyBerth = (method: string, berth: unknown, why: string): Deliberate => ({ why, berth, real: notFound(method) });
    const pair = await Pair.open(f, 'machineSocket');
    try {
      const c = new Comparison(f, pair);
      await c.steps([
        ...['io.systemd.Machine.Nope', 'io.nope.Foo', 'org.varlink.service.Nope', 'io.systemd.MachineImage.Nope',
          'io.systemd.UserDatabase.GetUserRecord', 'io.systemd.service.Reload', 'nope'].map(
          (m): Step => ({ label: `unknown method ${m}`, send: call(m, {}) }),
        ),
        { label: 'unknown method with more', send: call('io.systemd.Machine.Nope', {}, true) },
        {
          label: 'CleanPool without more',
          send: call('io.systemd.MachineImage.CleanPool', {}),
          deliberate: onlyBerth('io.systemd.MachineImage.CleanPool', err('org.varlink.service.ExpectedMore'), 'CleanPool exists in berth as in 262, which asks for more first'),
        },
        {
          label: 'MapFrom',
          send: call('io.systemd.Machine.MapFrom', {}),
          deliberate: onlyBerth('io.systemd.Machine.MapFrom', err('io.systemd.Machine.NoSuchMachine'), 'MapFrom exists in berth (upstream after 257)'),
        },
        {
          label: 'BindMount',
          send: call('io.systemd.Machine.BindMount', {}),
          deliberate: onlyBerth('io.systemd.Machine.BindMount', invalid('source'), 'BindMount exists in berth (upstream 262)'),
        },
        {
          label: 'OpenRootDirectory',
          send: call('io.systemd.Machine.OpenRootDirectory', {}),
          deliberate: onlyBerth('io.systemd.Machine.OpenRootDirectory', err('io.systemd.Machine.NoSuchMachine'), 'OpenRootDirectory exists in berth (upstream 262)'),
        },
        {
          label: 'MapTo',
          send: call('io.systemd.Machine.MapTo', {}),
          deliberate: onlyBerth('io.systemd.Machine.MapTo', err('io.systemd.Machine.NoSuchMachine'), 'MapTo exists in berth (upstream after 257)'),
        },
        {
          label: 'io.systemd.service.Ping',
          send: call('io.systemd.service.Ping', {}),
          deliberate: onlyBerth('io.systemd.service.Ping', { parameters: {} }, 'berth serves io.systemd.service'),
        },
        {
          label: 'io.systemd.service.GetEnvironment',
          send: call('io.systemd.service.GetEnvironment', {}),
          deliberate: onlyBerth(
            'io.systemd.service.GetEnvironment',
            (b: { parameters?: { environment?: unknown } }[]) => Array.isArray(b[0]?.parameters?.environment),
            'berth serves io.systemd.service',
          ),
        },
        { label: 'List without more: ExpectedMore', send: call('io.systemd.Machine.List', {}) },
        { label: 'List, acquireMetadata only, without more', send: call('io.systemd.Machine.List', { acquireMetadata: 'no' }) },
        { label: 'image List without more: ExpectedMore', send: call('io.systemd.MachineImage.List', {}) },
        { label: 'a method without more support, called with more', send: call('io.systemd.Machine.Unregister', { name: `${f.prefix}-nope` }, true) },
        { label: 'Kill with more', send: call('io.systemd.Machine.Kill', { name: `${f.prefix}-nope`, signal: 28 }, true) },
      ]);
      expect(c.report()).toBe('');
    } finally {
      pair.close();
    }
    const userdb = await Pair.open(f, 'userdbSocket');
    try {
      const c = new Comparison(f, userdb);
      await c.steps(
        ['io.systemd.Machine.List', 'io.systemd.service.Ping', 'io.berth.Machine.Describe', 'io.systemd.UserDatabase.Nope', 'org.varlink.service.Nope'].map(
          (m): Step => ({ label: `userdb socket: ${m}`, send: call(m, {}) }),
        ),
      );
      expect(c.report()).toBe('');
    } finally {
      userdb.close();
    }
  });

  it('lists images as 257 does', async (ctx) => {
    const f = need(ctx);
    const pair = await Pair.open(f, 'imageSocket');
    try {
      const c = new Comparison(f, pair);
      const list = (parameters: object, more = false) => call('io.systemd.MachineImage.List', parameters, more);
      const byName = (rs: { parameters?: Record<string, unknown> }[]) =>
        [...rs].sort((x, y) => String(x.parameters?.name).localeCompare(String(y.parameters?.name))).map((r) => r.parameters);
      const { real, berth } = await pair.call(JSON.stringify(list({}, true)));
      const hostRO = (r: unknown): Deliberate => ({ why: 'the host image is read-only in 262, as berth has it', berth: hostReadOnly262(r), real: () => true });
      c.values('image List --more, by name', byName(real), byName(berth), hostRO([byName(real)]));
      const realHost = async (p: object) => (await pair.call(JSON.stringify(list(p)))).real.map((r) => ({ ...r, parameters: r.parameters ?? {} }));
      const hostStep = async (label: string, p: object): Promise<Step> => ({ label, send: list(p), deliberate: hostRO(await realHost(p)) });
      await c.steps([
        await hostStep('image List .host', { name: '.host' }),
        await hostStep('image List .host with metadata', { name: '.host', acquireMetadata: 'graceful' }),
        { label: 'image List unknown', send: list({ name: `${f.prefix}-nope` }) },
        { label: 'image List bad name', send: list({ name: 'a/b' }) },
        { label: 'image Remove unknown', send: call('io.systemd.MachineImage.Remove', { name: `${f.prefix}-nope` }) },
      ]);
      expect(c.report()).toBe('');
      expect(JSON.stringify(c.outcomes.find((o) => o.label === 'image List .host')?.berth)).toContain('"path":"/"');
    } finally {
      pair.close();
    }
  });

  // Was a difference (fixed in src/varlink/duplicates.ts): sd-varlink refuses an object with a
  // key given twice (InvalidParameter naming the key for method parameters, ENOTUNIQ from
  // org.varlink.service's own methods, the connection dropped for a doubled top-level key), while
  // berth's JSON.parse kept the last value and went on. The Varlink layer now
  // detects duplicate keys.
  it('refuses keys given twice as 257 does', async (ctx) => {
    const f = need(ctx);
    const pair = await Pair.open(f, 'machineSocket');
    try {
      const c = new Comparison(f, pair);
      await c.steps([
        { label: 'Kill, signal twice', send: '{"method":"io.systemd.Machine.Kill","parameters":{"name":"nope","signal":9,"signal":9}}' },
        { label: 'List, name twice', send: '{"method":"io.systemd.Machine.List","parameters":{"name":"a b","name":".host"}}' },
        { label: 'List, pid.pid twice', send: '{"method":"io.systemd.Machine.List","parameters":{"pid":{"pid":1,"pid":1}}}' },
        { label: 'GetInterfaceDescription, interface twice', send: '{"method":"org.varlink.service.GetInterfaceDescription","parameters":{"interface":"io.systemd","interface":"io.systemd"}}' },
      ]);
      expect(c.report()).toBe('');
    } finally {
      pair.close();
    }
  });

  // Was a difference (fixed in src/server/image-api.ts): 257 refuses to
  // change the host image with EROFS after checking the parameters (a bad newName is InvalidParameter
  // first; an Update that changes nothing is {}), where berth answered EOPNOTSUPP for all of them.
  // Only calls 257 refuses are sent: nothing here may modify the host.
  it('refuses to change the host image as 257 does', async (ctx) => {
    const f = need(ctx);
    const pair = await Pair.open(f, 'imageSocket');
    try {
      const c = new Comparison(f, pair);
      const img = (method: string, parameters: object): Step => ({ label: `image ${method} ${JSON.stringify(parameters)}`, send: call(`io.systemd.MachineImage.${method}`, parameters) });
      await c.steps([
        img('Update', { name: '.host', readOnly: true }),
        img('Update', { name: '.host', readOnly: false }),
        img('Update', { name: '.host', newName: `${f.prefix}-x` }),
        img('Update', { name: '.host', newName: 'a/b' }),
        img('Update', { name: '.host', limit: 1_000_000 }),
        img('Update', { name: '.host' }),
        img('Remove', { name: '.host' }),
        img('Update', { name: `${f.prefix}-nope`, readOnly: true }),
      ]);
      expect(c.report()).toBe('');
    } finally {
      pair.close();
    }
  });
});
