// `npm run demo` (scripts/demo.sh) end to end: besides berthctl, userdbctl and ps, the real machinectl 252
// lists and shows the demo's container over D-Bus, on the dbus-daemon the demo starts in its own mount
// namespace, and the demo stops that bus again. The demo names its machine `demo`: running it twice at
// once on one host collides in the cgroup tree (not private to the demo's namespace).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO } from '../helpers/generated.js';
import { run } from '../helpers/run.js';

const why =
  process.getuid?.() !== 0 ? 'needs root (the demo makes namespaces and cgroups)'
  : !existsSync(join(REPO, 'dist/bin/berthd.mjs')) ? 'not built (npm run build)'
  : !existsSync('/usr/bin/machinectl') ? 'machinectl 252 is not installed (apt-get install systemd-container)'
  : '';

/** The text of the demo's step whose header starts with `title`, up to the next step. */
function section(out: string, title: string): string {
  const plain = out.replace(/\x1b\[[0-9;]*m/g, '');
  const at = plain.indexOf(`== ${title}`);
  if (at < 0) return '';
  const rest = plain.slice(plain.indexOf('\n', at) + 1);
  const end = rest.indexOf('\n== ');
  return end < 0 ? rest : rest.slice(0, end);
}

describe.skipIf(!!why)('npm run demo', () => {
  it('shows the container through the real machinectl list and status on its own bus', async () => {
    // One stream, in the order the demo wrote it (machinectl's error line goes to stderr).
    const r = await run(['bash', '-c', 'exec bash "$0" 2>&1', join(REPO, 'scripts/demo.sh')], { timeoutMs: 240_000 });
    const out = r.stdout;
    expect(r.code, out.slice(-3000)).toBe(0);
    expect(section(out, 'dbus-daemon:')).toMatch(/^dbus-daemon \d+ on \/run\/dbus\/system_bus_socket$/m);

    const list = section(out, 'machinectl list');
    expect(list.split('\n').find((l) => l.startsWith('demo '))?.split(/\s+/).slice(0, 4)).toEqual(['demo', 'container', 'berth', 'busybox']);
    expect(list).toContain('1 machines listed.');

    const status = section(out, 'machinectl status demo').split('\n').map((l) => l.trim());
    expect(status[0]).toMatch(/^Failed to query unit control group path: /);
    expect(status[1]).toMatch(/^demo\([0-9a-f]{32}\)$/);
    for (const line of ['Service: berth; class container', 'OS: BusyBox 1.35.0 (berth test image)', 'Unit: machine-demo.scope']) expect(status).toContain(line);
    expect(status.some((l) => /^Leader: \d+ \(init\)$/.test(l))).toBe(true);

    const end = section(out, 'stop the container');
    expect(end).toContain('0 machines listed.');
    expect(end).toContain('dbus-daemon stopped');
  }, 300_000);
});
