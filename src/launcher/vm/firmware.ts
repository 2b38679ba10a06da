// UEFI firmware for image boots, chosen from QEMU firmware interop descriptors (the JSON files in
// /usr/share/qemu/firmware and friends, as the "ovmf" package installs them).

import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { HostLacksError } from './host.js';
import type { Tristate } from './options.js';

export interface FirmwareDescriptor {
  path: string;
  description: string;
  interfaceTypes: string[];
  device: string;
  executable: { filename: string; format: string };
  nvramTemplate?: { filename: string; format: string };
  architectures: string[];
  features: string[];
}

/** Search path, most specific first; a file name found earlier hides the same name later. */
export function firmwareDirs(env: NodeJS.ProcessEnv = process.env): string[] {
  const home = env.XDG_CONFIG_HOME ?? (env.HOME ? join(env.HOME, '.config') : undefined);
  return [...(home ? [join(home, 'qemu/firmware')] : []), '/etc/qemu/firmware', '/usr/share/qemu/firmware'];
}

export function parseFirmwareDescriptor(path: string, text: string): FirmwareDescriptor {
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(text) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${path}: not JSON: ${(e as Error).message}`);
  }
  const mapping = (j.mapping ?? {}) as Record<string, unknown>;
  const exe = mapping.executable as { filename?: string; format?: string } | undefined;
  if (typeof j.description !== 'string' || !Array.isArray(j['interface-types']) || typeof mapping.device !== 'string' || !Array.isArray(j.targets) || !Array.isArray(j.features))
    throw new Error(`${path}: not a firmware descriptor (needs description, interface-types, mapping, targets, features)`);
  // flash devices name their code file under mapping.executable; memory devices under mapping.filename
  const filename = exe?.filename ?? (mapping.filename as string | undefined);
  if (!filename) throw new Error(`${path}: firmware descriptor without an executable`);
  const nv = mapping['nvram-template'] as { filename?: string; format?: string } | undefined;
  return {
    path,
    description: j.description,
    interfaceTypes: j['interface-types'] as string[],
    device: mapping.device,
    executable: { filename, format: exe?.format ?? 'raw' },
    nvramTemplate: nv?.filename ? { filename: nv.filename, format: nv.format ?? 'raw' } : undefined,
    architectures: (j.targets as { architecture?: string }[]).map((t) => t.architecture ?? ''),
    features: j.features as string[],
  };
}

/** Descriptor files found, merged by file name (earlier directories win), sorted by file name. */
export function listFirmwareFiles(dirs: readonly string[] = firmwareDirs()): string[] {
  const byName = new Map<string, string>();
  for (const d of dirs) {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      continue;
    }
    for (const n of names) if (n.endsWith('.json') && !byName.has(n)) byName.set(n, join(d, n));
  }
  return [...byName.keys()].sort().map((n) => byName.get(n)!);
}

export function loadFirmwareDescriptor(path: string): FirmwareDescriptor {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new HostLacksError(`--firmware: cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return parseFirmwareDescriptor(path, text);
}

/**
 * The first usable UEFI flash firmware for `arch`: descriptors with pre-enrolled keys are skipped (they are
 * known to refuse unsigned test images), and --secure-boot=yes/no filters on the secure-boot feature.
 */
export function selectFirmware(descriptors: readonly FirmwareDescriptor[], arch: string, secureBoot: Tristate): FirmwareDescriptor | undefined {
  return descriptors.find(
    (d) =>
      d.interfaceTypes.includes('uefi') &&
      d.device === 'flash' &&
      d.architectures.includes(arch) &&
      !d.features.includes('enrolled-keys') &&
      (secureBoot === 'auto' || d.features.includes('secure-boot') === (secureBoot === 'yes')),
  );
}

export function findFirmware(arch: string, secureBoot: Tristate, dirs: readonly string[] = firmwareDirs()): FirmwareDescriptor {
  const files = listFirmwareFiles(dirs);
  const descriptors: FirmwareDescriptor[] = [];
  for (const f of files) {
    try {
      descriptors.push(loadFirmwareDescriptor(f));
    } catch {
      // a broken descriptor is not a reason to fail while others may fit
    }
  }
  const d = selectFirmware(descriptors, arch, secureBoot);
  if (!d) {
    const what = secureBoot === 'yes' ? 'UEFI firmware with Secure Boot' : secureBoot === 'no' ? 'UEFI firmware without Secure Boot' : 'UEFI firmware';
    throw new HostLacksError(
      `no ${what} for ${arch} found in ${dirs.join(', ')} (install ovmf, or boot a kernel directly with --linux)`,
    );
  }
  return d;
}
