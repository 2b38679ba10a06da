/**
 * Machine images: the directories and raw disk files in the image directories machined reads
 * (/var/lib/machines, /var/lib/container, /usr/local/lib/machines, /usr/lib/machines), plus the
 * host itself as `.host`. The first directory holding a name wins, as upstream.
 */
import { cpSync, existsSync, readFileSync, readdirSync, renameSync, rmSync, statSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { parseOsRelease } from './registry/metadata.js';

export type ImageType = 'directory' | 'subvolume' | 'raw' | 'block';

export interface Image {
  name: string;
  path: string;
  type: ImageType;
  readOnly: boolean;
  creationTimestamp?: number;
  modificationTimestamp?: number;
  usage?: number;
  usageExclusive?: number;
}

export interface ImageMetadata {
  hostname?: string;
  machineId?: string;
  machineInfo?: string[];
  OSRelease?: string[];
}

/** Image names follow the rules for file names that are also host names: no slashes, no dot files. */
export function isValidImageName(name: string): boolean {
  if (name === '.host') return true;
  if (name.length === 0 || name.length > 255) return false;
  if (name.startsWith('.') || name.includes('/') || name.endsWith('.raw')) return false;
  return /^[A-Za-z0-9_.-]+$/.test(name) && !name.includes('..');
}

const HOST: Image = { name: '.host', path: '/', type: 'directory', readOnly: false };

function microseconds(ms: number): number | undefined {
  return ms > 0 ? Math.round(ms * 1000) : undefined;
}

function describe(name: string, path: string, st: Stats): Image | undefined {
  let type: ImageType;
  if (st.isDirectory()) type = 'directory';
  else if (st.isFile() && path.endsWith('.raw')) type = 'raw';
  else if (st.isBlockDevice()) type = 'block';
  else return undefined;
  const image: Image = { name, path, type, readOnly: (st.mode & 0o222) === 0 };
  const created = microseconds(st.birthtimeMs);
  const modified = microseconds(st.mtimeMs);
  if (created !== undefined) image.creationTimestamp = created;
  if (modified !== undefined) image.modificationTimestamp = modified;
  if (type === 'raw') {
    image.usage = st.blocks * 512;
    image.usageExclusive = st.blocks * 512;
  }
  return image;
}

/** The image at a path, or undefined when nothing usable is there. */
function describeAt(name: string, path: string): Image | undefined {
  let st: Stats;
  try {
    st = statSync(path);
  } catch {
    return undefined;
  }
  return describe(name, path, st);
}

export class ImageStore {
  constructor(readonly directories: string[]) {}

  /** Every image, `.host` first, each name once. */
  list(): Image[] {
    const seen = new Set<string>(['.host']);
    const out: Image[] = [HOST];
    for (const dir of this.directories) {
      let entries: string[];
      try {
        entries = readdirSync(dir).sort();
      } catch {
        continue;
      }
      for (const entry of entries) {
        if (entry.startsWith('.')) continue;
        const name = entry.endsWith('.raw') ? entry.slice(0, -4) : entry;
        if (seen.has(name) || !isValidImageName(name)) continue;
        const image = describeAt(name, join(dir, entry));
        if (!image) continue;
        seen.add(name);
        out.push(image);
      }
    }
    return out;
  }

  find(name: string): Image | undefined {
    if (name === '.host') return HOST;
    for (const dir of this.directories) {
      for (const path of [join(dir, name), join(dir, `${name}.raw`)]) {
        const image = describeAt(name, path);
        if (image) return image;
      }
    }
    return undefined;
  }

  /** Reads hostname, machine id, machine-info and os-release from a directory image. */
  metadata(image: Image): ImageMetadata {
    if (image.type !== 'directory') throw Object.assign(new Error('metadata of non-directory image'), { errno: 95 });
    const root = image.path;
    const read = (p: string) => {
      try {
        return readFileSync(join(root, p), 'utf8');
      } catch {
        return undefined;
      }
    };
    const out: ImageMetadata = {};
    const hostname = read('etc/hostname')?.trim();
    if (hostname) out.hostname = hostname;
    const id = read('etc/machine-id')?.trim();
    if (id && /^[0-9a-f]{32}$/.test(id)) out.machineId = id;
    const info = read('etc/machine-info');
    if (info !== undefined) out.machineInfo = parseOsRelease(info);
    const osRelease = read('etc/os-release') ?? read('usr/lib/os-release');
    if (osRelease !== undefined) out.OSRelease = parseOsRelease(osRelease);
    return out;
  }

  /** Renames an image within its directory. */
  rename(image: Image, newName: string): void {
    const target = join(image.path, '..', image.type === 'raw' ? `${newName}.raw` : newName);
    if (existsSync(target)) throw Object.assign(new Error('target exists'), { errno: 17 });
    renameSync(image.path, target);
  }

  clone(image: Image, newName: string): void {
    const target = join(this.directories[0] ?? '/var/lib/machines', image.type === 'raw' ? `${newName}.raw` : newName);
    if (existsSync(target)) throw Object.assign(new Error('target exists'), { errno: 17 });
    cpSync(image.path, target, { recursive: true, preserveTimestamps: true, verbatimSymlinks: true });
  }

  remove(image: Image): void {
    rmSync(image.path, { recursive: true, force: false });
  }
}
