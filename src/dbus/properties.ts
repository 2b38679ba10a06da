/**
 * org.freedesktop.DBus.Properties for exported objects: Get, GetAll and Set with the errors sd-bus
 * gives (UnknownInterface, UnknownProperty, PropertyReadOnly, InvalidArgs for a value of the wrong
 * type), and the body of PropertiesChanged by each property's EmitsChangedSignal behaviour.
 */
import { DBusError, DBusErrors, StandardErrors } from './errors.js';
import type { CallContext, InterfaceSpec, PropertySpec } from './interface.js';
import type { Message } from './message.js';
import { Variant } from './variant.js';

export const PROPERTIES = 'org.freedesktop.DBus.Properties';

/** What each method reads first; sd-bus accepts a body that starts with it (and ignores the rest). */
const PARAMETERS: Record<string, [string, string]> = {
  Get: ['ss', 'Expected interface and member parameters'],
  GetAll: ['s', 'Expected interface parameter'],
  Set: ['ss', 'Expected interface and member parameters'],
};

function lookup(interfaces: readonly InterfaceSpec[], iface: string, name: string): PropertySpec {
  const p = interfaces.find((i) => i.name === iface)?.properties?.[name];
  if (!p) throw new DBusError(DBusErrors.UnknownProperty, `Unknown interface ${iface} or property ${name}.`);
  return p;
}

async function allOf(spec: InterfaceSpec, ctx: CallContext): Promise<Map<string, Variant>> {
  const out = new Map<string, Variant>();
  for (const [name, p] of Object.entries(spec.properties ?? {})) out.set(name, new Variant(p.type, await p.get(ctx)));
  return out;
}

export async function handleProperties(m: Message, interfaces: readonly InterfaceSpec[], ctx: CallContext): Promise<{ signature: string; body: unknown[] }> {
  const params = PARAMETERS[m.member!];
  if (!params) throw StandardErrors.unknownMethod(m.member!, PROPERTIES);
  if (!m.signature.startsWith(params[0])) throw new DBusError(DBusErrors.InvalidArgs, params[1]);
  const [iface, name, value] = m.body as [string, string, unknown];
  switch (m.member) {
    case 'Get': {
      const p = lookup(interfaces, iface, name);
      return { signature: 'v', body: [new Variant(p.type, await p.get(ctx))] };
    }
    case 'GetAll': {
      // An empty interface name asks for every interface's properties.
      const specs = iface ? interfaces.filter((i) => i.name === iface) : interfaces;
      if (iface && specs.length === 0) throw new DBusError(DBusErrors.UnknownInterface, `Unknown interface '${iface}'.`);
      const all = new Map<string, Variant>();
      for (const s of specs) for (const [k, v] of await allOf(s, ctx)) all.set(k, v);
      return { signature: 'a{sv}', body: [all] };
    }
    default: {
      const p = lookup(interfaces, iface, name);
      if (!p.set) throw new DBusError(DBusErrors.PropertyReadOnly, `Property '${name}' is not writable.`);
      if (!(value instanceof Variant) || value.signature !== p.type) {
        const got = value instanceof Variant ? value.signature : m.signature.slice(2);
        throw new DBusError(DBusErrors.InvalidArgs, `Invalid type '${got}' for property '${name}', expecting '${p.type}'.`);
      }
      await p.set(value.value, ctx);
      return { signature: '', body: [] };
    }
  }
}
/** [interface, changed, invalidated] for PropertiesChanged, or null when none of the names signal. */
export async function propertiesChangedBody(iface: InterfaceSpec, names: string[], ctx: CallContext): Promise<unknown[] | null> {
  const changed = new Map<string, Variant>();
  const invalidated: string[] = [];
  for (const name of names) {
    const p = iface.properties?.[name];
    if (!p) throw new TypeError(`${iface.name} has no property ${name}`);
    const mode = p.emitsChange ?? 'true';
    if (mode === 'true') changed.set(name, new Variant(p.type, await p.get(ctx)));
    else if (mode === 'invalidates') invalidated.push(name);
  }
  if (changed.size === 0 && invalidated.length === 0) return null;
  return [iface.name, changed, invalidated];
}
