/** What a machine may leave on the host; every test checks that a stopped or failed machine left none of it. */
import fs from 'node:fs';
import path from 'node:path';
import { Scope } from '../../../src/launcher/cgroup.js';

export function leftovers(runtimeDir: string, name: string): string[] {
  const out: string[] = [];
  const scope = Scope.locate(name);
  for (const p of scope.paths) if (fs.existsSync(p)) out.push(`cgroup ${p}`);
  const machines = path.join(runtimeDir, 'berth', 'machines');
  if (fs.existsSync(path.join(machines, name))) out.push(`run directory ${path.join(machines, name)}`);
  if (fs.existsSync(path.join(machines, `${name}.lock`))) out.push('name lock');
  const leases = path.join(runtimeDir, 'berth', 'uid-leases');
  for (const l of fs.existsSync(leases) ? fs.readdirSync(leases) : []) {
    const text = fs.readFileSync(path.join(leases, l), 'utf8');
    if (text.trim().endsWith(` ${name}`)) out.push(`uid lease ${l}`);
  }
  const trees = path.join(runtimeDir, 'berth', 'tree-locks');
  for (const l of fs.existsSync(trees) ? fs.readdirSync(trees) : []) {
    if (fs.readFileSync(path.join(trees, l), 'utf8').trim() === name) out.push(`tree lock ${l}`);
  }
  const unit = `/${scope.name}`;
  for (const pid of fs.readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
    try {
      if (fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8').includes(unit)) out.push(`process ${pid} in ${scope.name}`);
    } catch { /* gone */ }
  }
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    if (line.includes(runtimeDir)) out.push(`mount ${line}`);
  }
  return out;
}
