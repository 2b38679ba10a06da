// machinectl's image verbs against berthd over D-Bus, compared with the real systemd-machined 262 (the version
// berth follows) on the same pool: Debian's machinectl 252 and the reference 257 and 262 each run list-images
// (-a), image-status, show-image (-p, --value, the pool), set-limit, read-only, clone, rename, remove and clean
// (-a), good and bad, and print the same on both sides once dates are masked. berthctl's verbs of the same
// names (over Varlink) print what machinectl prints for berthd. machinectl needs
// /run/systemd/system and the standard bus socket, so every run is in a mount namespace of its own; the pool is
// /var/lib/machines, so this file runs only where that is a private tmpfs (npm test gives it one: scripts/test-namespace.sh).
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../helpers/run.js';
import { referenceTool, REFERENCE_SCRIPT } from '../helpers/reference.js';
import { BERTHD, berthdOnBus, type BerthdOnBus } from '../integration/dbus-api/fixture.js';
import { REPO } from '../helpers/generated.js';

const BERTHCTL = join(REPO, 'dist/src/client/berthctl.js');

const privatePool = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === '/var/lib/machines' && l.includes(' - tmpfs '));
const machined262 = process.getuid?.() === 0 ? await referenceTool('systemd-machined', { suite: 'sid' }) : '';
const why =
  process.getuid?.() !== 0 ? 'needs root (mount namespaces)'
  : !existsSync(BERTHD) ? 'not built (npm run build)'
  : !privatePool ? '/var/lib/machines is not a private tmpfs: npm test runs the tests with one (scripts/test-namespace.sh)'
  : typeof machined262 === 'string' ? `no systemd-machined 262 to compare with: ${machined262}`
  : '';
if (why) console.warn(`skipping the machinectl image tests: ${why}`);

/** The clients: label and the shell command that runs it. */
async function clients(): Promise<{ label: string; command: string | undefined; why: string }[]> {
  const ref257 = await referenceTool('machinectl');
  const ref262 = await referenceTool('machinectl', { suite: 'sid' });
  return [
    { label: '252', command: existsSync('/usr/bin/machinectl') ? '/usr/bin/machinectl' : undefined, why: 'machinectl 252 is not installed (systemd-container)' },
    { label: '257', command: typeof ref257 === 'string' ? undefined : `bash ${REFERENCE_SCRIPT} run machinectl`, why: String(ref257) },
    { label: '262', command: typeof ref262 === 'string' ? undefined : `BERTH_REFERENCE_SUITE=sid bash ${REFERENCE_SCRIPT} run machinectl`, why: String(ref262) },
  ];
}

/** The same pool before each client's run. */
const POOL_SETUP = `
cd /var/lib/machines && find . -mindepth 1 -maxdepth 1 -exec chattr -i {} + 2>/dev/null; find . -mindepth 1 -maxdepth 1 -exec rm -rf {} +
mkdir -p alpha/etc beta .hid
echo alphahost >alpha/etc/hostname
printf 'ID=test\\nNAME="Test OS"\\nPRETTY_NAME="Test OS 1"\\n' >alpha/etc/os-release
cd /
`;

/** One machinectl invocation per line, in an order whose effects both sides share. */
const VERBS = [
  'list-images',
  'list-images -a',
  'image-status alpha',
  'image-status nope',
  'show-image alpha',
  'show-image -p Name --value alpha',
  'show-image -p ReadOnly,Type alpha',
  'show-image',
  'set-limit 10G',
  'set-limit alpha 10G',
  'read-only alpha',
  'show-image -p ReadOnly --value alpha',
  'read-only alpha false',
  'show-image -p ReadOnly --value alpha',
  'read-only nope',
  'read-only .host',
  'clone alpha eps',
  'clone alpha beta',
  'clone nope x',
  'rename eps zeta',
  'rename nope x',
  'rename alpha beta',
  'rename alpha a/b',
  'list-images',
  'remove zeta',
  'remove nope',
  'remove .host',
  'clean',
  'list-images -a',
  'clean -a',
  'list-images -a',
];

const LOOP = `
n=0
while IFS= read -r line; do
  n=$((n+1))
  echo "=== $n $line"
  eval "$MC --no-pager $line" 2>&1 || echo "[exit $?]"
done <"$VERBS"
`;

describe.skipIf(!!why)('machinectl image verbs against berthd and machined 262', async () => {
  let t: BerthdOnBus;
  let dir: string;
  const variants = why ? [] : await clients();

  beforeAll(async () => {
    dir = mkdtempSync('/var/tmp/berth-mcimages-');
    writeFileSync(join(dir, 'verbs'), VERBS.join('\n') + '\n');
    writeFileSync(join(dir, 'loop.sh'), LOOP);
    writeFileSync(join(dir, 'setup.sh'), POOL_SETUP);
    t = await berthdOnBus('mcimages');
  }, 60_000);

  afterAll(async () => {
    await t?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Runs every client's verbs in a private namespace: `prelude` makes the bus (and Varlink sockets) appear. */
  async function runAll(prelude: string, epilogue = '', extra: { label: string; command: string }[] = []): Promise<Map<string, string>> {
    const clientsRun = [...variants.filter((v) => v.command), ...extra]
      .map((v) => `echo "### ${v.label}"\nbash ${join(dir, 'setup.sh')}\nMC="${v.command}" VERBS=${join(dir, 'verbs')} bash ${join(dir, 'loop.sh')}`)
      .join('\n');
    const script = `set -e\nmount -t tmpfs tmpfs /run/systemd\nmkdir -p /run/systemd/system /run/dbus\nmount -t tmpfs tmpfs /run/dbus\n${prelude}\nset +e\n${clientsRun}\n${epilogue}\n`;
    const r = await run(['unshare', '-m', '--propagation', 'private', 'bash', '-c', script], { timeoutMs: 240_000 });
    const out = new Map<string, string>();
    for (const section of r.stdout.split(/^### /m).slice(1)) {
      const label = section.slice(0, section.indexOf('\n'));
      for (const block of section.split(/^=== /m).slice(1)) {
        const nl = block.indexOf('\n');
        out.set(`${label}: ${block.slice(0, nl)}`, normalise(block.slice(nl + 1)));
      }
    }
    return out;
  }

  /** Dates and ages differ between runs; clean removes in machined's hash order. */
  const normalise = (text: string) => {
    const t = text.replace(/\w{3} \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \w+/g, 'DATE').replace(/; [^\n;]* ago/g, '; AGO');
    const removed = t.split('\n').filter((l) => l.startsWith('Removed image '));
    return removed.length ? [...removed.sort(), ...t.split('\n').filter((l) => !l.startsWith('Removed image '))].join('\n') : t;
  };

  it('prints for every client and verb what machined 262 gives', async () => {
    const runtime = join(t.runtime, 'systemd/machine');
    const berthctl = `${process.execPath} ${BERTHCTL} --address unix:${join(runtime, 'io.systemd.MachineImage')}`;
    const ours = await runAll(
      `mkdir -p /run/systemd/machine && mount --bind ${runtime} /run/systemd/machine\ntouch /run/dbus/system_bus_socket\nmount --bind ${t.bus.socketPath} /run/dbus/system_bus_socket`,
      '',
      [{ label: 'berthctl', command: berthctl }],
    );
    const theirs = await runAll(
      `mkdir -p /var/tmp/berth-reference-sid/state && mount -t tmpfs tmpfs /var/tmp/berth-reference-sid/state\nBERTH_REFERENCE_SUITE=sid bash ${REFERENCE_SCRIPT} machined start >/dev/null 2>&1`,
      `BERTH_REFERENCE_SUITE=sid bash ${REFERENCE_SCRIPT} machined stop >/dev/null 2>&1 || true`,
    );
    for (const v of variants) if (!v.command) console.warn(`machinectl ${v.label} not run: ${v.why}`);
    const ran = variants.filter((v) => v.command).length;
    expect(ran).toBeGreaterThan(0);
    expect(theirs.size).toBe(VERBS.length * ran);
    // Both sides really answered.
    const first = variants.find((v) => v.command)!.label;
    expect(ours.get(`${first}: 1 list-images`)).toMatch(/^NAME +TYPE +RO +USAGE +CREATED +MODIFIED\nalpha +directory +no /);
    expect(ours.get(`${first}: 6 show-image -p Name --value alpha`)).toBe('alpha\n');
    expect(theirs.get(`${first}: 26 remove nope`)).toContain("No image 'nope' known");
    if (process.env.BERTH_DEBUG_DIFF) console.log([...theirs].map(([c, a]) => `${c}\n  machined: ${a}  berthd:   ${ours.get(c)}`).join('\n'));
    const differ = [...theirs].filter(([k, v]) => ours.get(k) !== v).map(([k, v]) => ({ call: k, machined: v, berthd: ours.get(k) }));
    expect(differ).toEqual([]);

    // berthctl against machinectl (the newest that ran), both on berthd. berthctl prints no age after a date,
    // and splits -p at commas where machinectl 262 prints nothing.
    const newest = [...variants].reverse().find((v) => v.command)!.label;
    const unlike = new Set(['show-image -p ReadOnly,Type alpha']);
    const bare = (s: string | undefined) => s?.replace(/; AGO/g, '');
    const verbsDiffer = VERBS.map((verb, i) => `${i + 1} ${verb}`)
      .filter((k) => !unlike.has(k.replace(/^\d+ /, '')))
      .filter((k) => bare(ours.get(`berthctl: ${k}`)) !== bare(ours.get(`${newest}: ${k}`)))
      .map((k) => ({ verb: k, machinectl: ours.get(`${newest}: ${k}`), berthctl: ours.get(`berthctl: ${k}`) }));
    expect(ours.get('berthctl: 1 list-images')).toContain('alpha');
    expect(verbsDiffer).toEqual([]);
  }, 300_000);
});
