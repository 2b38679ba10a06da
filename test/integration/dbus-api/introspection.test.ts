// berthd's Manager, Machine and Image objects declare every method (with its signatures), property (with its type)
// and signal of machined 262's introspection, and nothing else: compared with the XML the real daemon
// returns (reference/dbus-262/ in the shared folder beside the clone; skipped where it is absent).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO } from '../../helpers/generated.js';
import { BERTHD, berthdOnBus, type BerthdOnBus } from './fixture.js';

const referenceDir = [join(REPO, '../shared/reference/dbus-262'), join(REPO, '../../shared/reference/dbus-262')].find((d) => existsSync(d));
const why =
  process.getuid?.() !== 0 ? 'needs root' : !existsSync(BERTHD) ? 'not built (npm run build)' : !referenceDir ? 'reference/dbus-262 not found beside the clone' : '';
if (why) console.warn(`skipping the D-Bus introspection comparison: ${why}`);

/** An interface's members from introspection XML: `method NAME(in)->(out)`, `property NAME type`, `signal NAME(sig)`. */
function members(xml: string, iface: string): string[] {
  const start = xml.indexOf(`<interface name="${iface}">`);
  if (start < 0) return [];
  const body = xml.slice(start, xml.indexOf('</interface>', start));
  const out: string[] = [];
  const block = /<(method|signal) name="([^"]+)"\s*(\/>|>([\s\S]*?)<\/\1>)/g;
  for (let m; (m = block.exec(body)); ) {
    const args = [...(m[4] ?? '').matchAll(/<arg\b([^>]*)\/?>/g)].map((a) => ({
      type: /type="([^"]+)"/.exec(a[1]!)![1]!,
      dir: /direction="(in|out)"/.exec(a[1]!)?.[1] ?? (m![1] === 'signal' ? 'out' : 'in'),
    }));
    const sig = (d: string) => args.filter((a) => a.dir === d).map((a) => a.type).join('');
    out.push(m[1] === 'method' ? `method ${m[2]}(${sig('in')})->(${sig('out')})` : `signal ${m[2]}(${sig('out')})`);
  }
  for (const p of body.matchAll(/<property name="([^"]+)" type="([^"]+)"/g)) out.push(`property ${p[1]} ${p[2]}`);
  return out.sort();
}

describe.skipIf(!!why)('introspection against machined 262', () => {
  let t: BerthdOnBus;
  const name = `in${process.pid % 100000}`;

  beforeAll(async () => {
    t = await berthdOnBus('dbusintro');
    await t.register(name);
  }, 60_000);

  afterAll(() => t?.stop());

  const introspect = async (path: string) =>
    (await t.conn.call({ destination: 'org.freedesktop.machine1', path, interface: 'org.freedesktop.DBus.Introspectable', member: 'Introspect' })).body[0] as string;

  it.each([
    ['org.freedesktop.machine1.Manager', '/org/freedesktop/machine1'],
    ['org.freedesktop.machine1.Machine', 'MACHINE'],
    // The host's image is always there.
    ['org.freedesktop.machine1.Image', '/org/freedesktop/machine1/image/_2ehost'],
  ])('%s has the members of 262', async (iface, path) => {
    const reference = readFileSync(join(referenceDir!, `${iface}.xml`), 'utf8');
    const ours = await introspect(path === 'MACHINE' ? `/org/freedesktop/machine1/machine/${name}` : path);
    expect(members(ours, iface)).toEqual(members(reference, iface));
    expect(members(ours, iface).length).toBeGreaterThan(iface.endsWith('Image') ? 15 : 10);
  });
});
