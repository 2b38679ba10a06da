import fs from 'node:fs';
import { afterAll, beforeAll } from 'vitest';
const dirs = ['/sys/fs/cgroup/systemd/machine.slice', '/sys/fs/cgroup/unified/machine.slice'];
const list = () => dirs.flatMap((d) => { try { return fs.readdirSync(d).filter((n) => n.endsWith('.scope')).map((n) => `${d.split('/')[4]}:${n}`); } catch { return []; } });
const file = () => (globalThis as any).__vitest_worker__?.filepath ?? expect.getState().testPath;
let before: string[] = [];
beforeAll(() => { before = list(); fs.appendFileSync('/tmp/scopecheck/log', `START ${file()} ${before.join(' ')}\n`); });
afterAll(async () => { await new Promise((r) => setTimeout(r, 300)); const now = list(); const added = now.filter((n) => !before.includes(n)); fs.appendFileSync('/tmp/scopecheck/log', `END ${file()} added: ${added.join(' ')}\n`); });
