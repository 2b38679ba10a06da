/** Introspection XML in sd-bus's layout, checked against machined 257's document for a Machine object. */
import { readFileSync, existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { introspectXml } from '../../../src/dbus/introspect.js';
import type { InterfaceSpec } from '../../../src/dbus/interface.js';

const REFERENCE = '/work/shared/reference/dbus-257/org.freedesktop.machine1.Machine.xml';

describe('introspection XML', () => {
  it('lays out properties, methods, signals and children as sd-bus does', () => {
    const iface: InterfaceSpec = {
      name: 'org.example.Thing',
      properties: {
        Name: { type: 's', get: () => '', emitsChange: 'const' },
        Size: { type: 't', get: () => 0n, set: () => {} },
      },
      methods: {
        Get: { in: 's', out: 'o', inNames: ['name'], outNames: ['path'] , handler: () => [] },
        Open: { out: 'hs', outNames: ['pty', 'pty_path'], annotations: { 'org.freedesktop.systemd1.Privileged': 'true' }, handler: () => [] },
        Stop: { handler: () => [] },
      },
      signals: { Gone: { signature: 'so', names: ['name', 'path'] } },
    };
    const xml = introspectXml([iface], ['a_2db', 'c']);
    const own = xml.slice(xml.indexOf(' <interface name="org.example.Thing">'));
    expect(own).toBe(` <interface name="org.example.Thing">
  <property name="Name" type="s" access="read">
   <annotation name="org.freedesktop.DBus.Property.EmitsChangedSignal" value="const"/>
  </property>
  <property name="Size" type="t" access="readwrite">
  </property>
  <method name="Get">
   <arg type="s" name="name" direction="in"/>
   <arg type="o" name="path" direction="out"/>
  </method>
  <method name="Open">
   <arg type="h" name="pty" direction="out"/>
   <arg type="s" name="pty_path" direction="out"/>
   <annotation name="org.freedesktop.systemd1.Privileged" value="true"/>
  </method>
  <method name="Stop">
  </method>
  <signal name="Gone">
   <arg type="s" name="name"/>
   <arg type="o" name="path"/>
  </signal>
 </interface>
 <node name="a_2db"/>
 <node name="c"/>
</node>
`);
  });

  it('the standard interfaces match machined 257 byte for byte', (t) => {
    if (!existsSync(REFERENCE)) return t.skip(`${REFERENCE} is not on this machine`);
    const ref = readFileSync(REFERENCE, 'utf8');
    const head = ref.slice(0, ref.indexOf(' <interface name="org.freedesktop.machine1.Machine">'));
    expect(introspectXml(null, []).startsWith(head)).toBe(true);
  });
});
