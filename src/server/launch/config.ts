/**
 * Per-machine configuration: `NAME.berth` files, berth's counterpart of `.nspawn` files.
 *
 *   # comment
 *   [Spawn]
 *   Class=container            # or vm
 *   Directory=/var/lib/machines/web
 *   PrivateUsers=pick
 *   Boot=yes
 *   Bind=/srv/web:/srv         # repeatable keys may appear several times
 *   Command=/bin/sh -c 'exec httpd -f'
 *
 * Every key is a berth-spawn option written in CamelCase (PrivateUsers → --private-users); flags
 * take yes/no. `Command` (containers) and `KernelCommandLine` (VMs) are split like a shell would
 * and passed after the options. Unknown keys are errors, so a typo never goes unnoticed.
 */
import { readFileSync } from 'node:fs';
import { isValidMachineName, machineNameRefusal } from '../../domain/machine-name.js';
import { parseBoolean } from '../../domain/option-values.js';

export interface MachineConfig {
  name: string;
  path: string;
  class: 'container' | 'vm';
  /** berth-spawn arguments, without -M and --runtime-dir. */
  argv: string[];
}

export class ConfigError extends Error {
  constructor(
    readonly path: string,
    readonly reason: string,
    readonly line?: number,
  ) {
    super(`${path}${line ? `:${line}` : ''}: ${reason}`);
  }
}

const FLAGS = new Set(['boot', 'network-veth', 'network-tap', 'network-user-mode']);
const CONTAINER_KEYS = new Set([
  'directory', 'boot', 'private-users', 'bind', 'bind-ro', 'setenv', 'set-credential', 'load-credential',
  'link-journal', 'network-veth', 'container-ttys', 'notify-ready', 'kill-signal', 'stop-timeout', 'uuid',
]);
const VM_KEYS = new Set([
  'image', 'directory', 'cpus', 'ram', 'kvm', 'vsock', 'vsock-cid', 'tpm', 'linux', 'initrd', 'firmware',
  'secure-boot', 'network-tap', 'network-user-mode', 'private-users', 'bind', 'bind-ro', 'extra-drive',
  'forward-journal', 'pass-ssh-key', 'ssh-key-type', 'load-credential', 'set-credential', 'smbios11',
  'notify-ready', 'uuid',
]);

function kebab(key: string): string {
  return key.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase();
}

/** Splits a command line the way a POSIX shell splits words (quotes and backslashes; no expansion). */
export function splitWords(text: string): string[] {
  const out: string[] = [];
  let cur = '';
  let has = false;
  let quote: '"' | "'" | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote === "'") {
      if (c === "'") quote = undefined;
      else cur += c;
    } else if (quote === '"') {
      if (c === '"') quote = undefined;
      else if (c === '\\' && i + 1 < text.length && '"\\$`'.includes(text[i + 1]!)) cur += text[++i];
      else cur += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      has = true;
    } else if (c === '\\' && i + 1 < text.length) {
      cur += text[++i];
      has = true;
    } else if (c === ' ' || c === '\t') {
      if (has || cur) out.push(cur);
      cur = '';
      has = false;
    } else {
      cur += c;
      has = true;
    }
  }
  if (quote) throw new Error('unterminated quote');
  if (has || cur) out.push(cur);
  return out;
}

export function parseConfig(name: string, path: string, text: string): MachineConfig {
  // The file's name is the machine's: refused here as berthd, berth-spawn and berthctl refuse it.
  if (!isValidMachineName(name)) throw new ConfigError(path, machineNameRefusal(name));
  let section = '';
  const entries: { key: string; value: string; line: number }[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) return;
    const sec = /^\[([A-Za-z]+)\]$/.exec(line);
    if (sec) {
      section = sec[1]!;
      if (section !== 'Spawn') throw new ConfigError(path, `unknown section [${section}]`, i + 1);
      return;
    }
    if (section !== 'Spawn') throw new ConfigError(path, 'settings must follow [Spawn]', i + 1);
    const eq = line.indexOf('=');
    if (eq <= 0) throw new ConfigError(path, `expected Key=Value`, i + 1);
    entries.push({ key: line.slice(0, eq).trim(), value: line.slice(eq + 1).trim(), line: i + 1 });
  });
  const cls = entries.find((e) => e.key === 'Class')?.value ?? 'container';
  if (cls !== 'container' && cls !== 'vm') throw new ConfigError(path, `Class must be container or vm, not '${cls}'`);
  const allowed = cls === 'vm' ? VM_KEYS : CONTAINER_KEYS;
  const argv: string[] = cls === 'vm' ? ['--vm'] : [];
  let trailing: string[] = [];
  for (const e of entries) {
    if (e.key === 'Class') continue;
    if (e.key === 'Command' || e.key === 'KernelCommandLine') {
      if ((e.key === 'Command') !== (cls === 'container')) throw new ConfigError(path, `${e.key} does not apply to a ${cls}`, e.line);
      try {
        trailing = splitWords(e.value);
      } catch (err) {
        throw new ConfigError(path, (err as Error).message, e.line);
      }
      continue;
    }
    const option = kebab(e.key);
    if (!allowed.has(option)) throw new ConfigError(path, `unknown setting '${e.key}' for a ${cls}`, e.line);
    if (FLAGS.has(option)) {
      const on = parseBoolean(e.value);
      if (on === undefined) throw new ConfigError(path, `${e.key} takes yes or no`, e.line);
      if (on) argv.push(`--${option}`);
      continue;
    }
    argv.push(`--${option}=${e.value}`);
  }
  if (cls === 'container' && !argv.some((a) => a.startsWith('--directory='))) throw new ConfigError(path, 'Directory= is required for a container');
  if (trailing.length) argv.push(...(cls === 'container' ? ['--', ...trailing] : trailing));
  return { name, path, class: cls, argv };
}

export function loadConfig(name: string, path: string): MachineConfig {
  return parseConfig(name, path, readFileSync(path, 'utf8'));
}
