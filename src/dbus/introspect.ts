/**
 * org.freedesktop.DBus.Introspectable's XML, generated from the registered interfaces in the layout
 * sd-bus writes (the standard interfaces first; per interface its properties with access and any
 * EmitsChangedSignal other than the default, then methods with their arguments, then signals;
 * then the child nodes), so that a client sees the same document from berth as from machined.
 */
import type { InterfaceSpec } from './interface.js';
import { parseSignature, formatType } from './signature.js';

const DOCTYPE =
  '<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"\n' +
  '"https://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">\n';

/** The standard interfaces every object has, as introspection XML. */
const STANDARD = ` <interface name="org.freedesktop.DBus.Peer">
  <method name="Ping"/>
  <method name="GetMachineId">
   <arg type="s" name="machine_uuid" direction="out"/>
  </method>
 </interface>
 <interface name="org.freedesktop.DBus.Introspectable">
  <method name="Introspect">
   <arg name="xml_data" type="s" direction="out"/>
  </method>
 </interface>
 <interface name="org.freedesktop.DBus.Properties">
  <method name="Get">
   <arg name="interface_name" direction="in" type="s"/>
   <arg name="property_name" direction="in" type="s"/>
   <arg name="value" direction="out" type="v"/>
  </method>
  <method name="GetAll">
   <arg name="interface_name" direction="in" type="s"/>
   <arg name="props" direction="out" type="a{sv}"/>
  </method>
  <method name="Set">
   <arg name="interface_name" direction="in" type="s"/>
   <arg name="property_name" direction="in" type="s"/>
   <arg name="value" direction="in" type="v"/>
  </method>
  <signal name="PropertiesChanged">
   <arg type="s" name="interface_name"/>
   <arg type="a{sv}" name="changed_properties"/>
   <arg type="as" name="invalidated_properties"/>
  </signal>
 </interface>
`;

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function annotations(a: Record<string, string> | undefined, indent: string): string {
  if (!a) return '';
  return Object.entries(a)
    .map(([k, v]) => `${indent}<annotation name="${esc(k)}" value="${esc(v)}"/>\n`)
    .join('');
}

function args(sig: string, names: string[] | undefined, direction: string | null): string {
  return parseSignature(sig)
    .map((t, i) => {
      const name = names?.[i] ? ` name="${esc(names[i])}"` : '';
      const dir = direction ? ` direction="${direction}"` : '';
      return `   <arg type="${esc(formatType(t))}"${name}${dir}/>\n`;
    })
    .join('');
}

/** sd-bus writes every member of an exported interface as an open and a close tag, even when empty. */
function element(tag: string, name: string, body: string): string {
  return `  <${tag} name="${esc(name)}">\n${body}  </${tag}>\n`;
}

export function interfaceXml(i: InterfaceSpec): string {
  let out = ` <interface name="${esc(i.name)}">\n` + annotations(i.annotations, '  ');
  for (const [name, p] of Object.entries(i.properties ?? {})) {
    const access = p.set ? 'readwrite' : 'read';
    const emits = p.emitsChange && p.emitsChange !== 'true' ? { 'org.freedesktop.DBus.Property.EmitsChangedSignal': p.emitsChange } : undefined;
    const body = annotations(emits, '   ') + annotations(p.annotations, '   ');
    out += `  <property name="${esc(name)}" type="${esc(p.type)}" access="${access}">\n${body}  </property>\n`;
  }
  for (const [name, m] of Object.entries(i.methods ?? {})) {
    const body = args(m.in ?? '', m.inNames, 'in') + args(m.out ?? '', m.outNames, 'out') + annotations(m.annotations, '   ');
    out += element('method', name, body);
  }
  for (const [name, s] of Object.entries(i.signals ?? {})) {
    out += element('signal', name, args(s.signature ?? '', s.names, null) + annotations(s.annotations, '   '));
  }
  return out + ' </interface>\n';
}

/** The whole document for one node: the standard interfaces, its own (none for a node that only has children), its children. */
export function introspectXml(interfaces: readonly InterfaceSpec[] | null, children: readonly string[]): string {
  let out = DOCTYPE + '<node>\n';
  out += STANDARD + (interfaces ?? []).map(interfaceXml).join('');
  for (const c of children) out += ` <node name="${esc(c)}"/>\n`;
  return out + '</node>\n';
}
