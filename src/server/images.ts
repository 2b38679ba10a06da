/**
 * Machine images on disk: the directories and raw disk files in the image directories machined reads
 * (/var/lib/machines, /var/lib/container, /usr/local/lib/machines, /usr/lib/machines), plus the host
 * itself as `.host`. The first directory holding a name wins, as upstream. What an image is and how it
 * is renamed, cloned, marked read-only and removed lives here; who may ask is image-operations.ts's.
 */
import { chmodSync, readFileSync, readdirSync, renameSync, statSync, type Stats } from 'node:fs';
import { cp, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { parseOsRelease } from './registry/metadata.js';
import { isImmutable, setImmutable } from './image-flags.js';

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
  limit?: number;
  limitExclusive?: number;
}

export interface ImageMetadata {
  hostname?: string;
  machineId?: string;
  machineInfo?: string[];
  OSRelease?: string[];
}

/** An Error that carries the errno a binding reports. */
export const errnoFailure = (errno: number, message = `errno ${errno}`) => Object.assign(new Error(message), { errno });

/**
 * Image names are file names: not empty, at most 255 bytes, no slash, not `.` or `..`, no control
 * characters. A leading dot makes an image hidden, not invalid.
 */
export function isValidImageName(name: string): boolean {
  if (name.length === 0 || Buffer.byteLength(name) > 255) return false;
  if (name === '.' || name === '..' || name.includes('/')) return false;
  return !/[\x00-\x1f\x7f]/.test(name);
}

/** Hidden images: names with a leading dot (machinectl list-images shows them only with -a). */
export const isHiddenImage = (image: Image): boolean => image.name.startsWith('.') && image.name !== '.host';
/** The host's own image. */
export const isHostImage = (image: Image): boolean => image.name === '.host';
/** Images that came with the operating system (under /usr): never changed or removed. */
export const isVendorImage = (image: Image): boolean => image.path.startsWith('/usr/');

// machined 262 reports the host's root as read-only.
const HOST: Image = { name: '.host', path: '/', type: 'directory', readOnly: true };

function microseconds(ms: number): number | undefined {
  return ms > 0 ? Math.round(ms * 1000) : undefined;
}

function describe(name: string, path: string, st: Stats): Image | undefined {
  let type: ImageType;
  if (st.isDirectory()) type = 'directory';
  else if (st.isFile() && path.endsWith('.raw')) type = 'raw';
  else if (st.isBlockDevice()) type = 'block';
  else return undefined;
  // A directory is read-only by its immutable flag, a file by having no write bits; machined 262 reports
  // every hidden image read-only.
  const readOnly = name.startsWith('.') || (type === 'directory' ? isImmutable(path) : (st.mode & 0o222) === 0);
  const image: Image = { name, path, type, readOnly };
  const created = microseconds(st.birthtimeMs);
  if (created !== undefined) image.creationTimestamp = created;
  if (type === 'raw') {
    // A directory's modification time says nothing about its tree; a file's does.
    const modified = microseconds(st.mtimeMs);
    if (modified !== undefined) image.modificationTimestamp = modified;
    image.usage = st.blocks * 512;
    image.usageExclusive = st.blocks * 512;
    image.limit = st.size;
    image.limitExclusive = st.size;
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

const fileName = (image: Image, name: string) => (image.type === 'raw' ? `${name}.raw` : name);

export class ImageStore {
  constructor(readonly directories: string[]) {}

  /** Where new images (clones) go. */
  get pool(): string {
    return this.directories[0] ?? '/var/lib/machines';
  }

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
        // `.#…` are the temporary files of an operation under way.
        if (entry.startsWith('.#')) continue;
        // Only a file drops its `.raw`: a directory called `x.raw` is the image `x.raw`.
        const asRaw = entry.endsWith('.raw') ? describeAt(entry.slice(0, -4), join(dir, entry)) : undefined;
        const image = asRaw?.type === 'raw' ? asRaw : describeAt(entry, join(dir, entry));
        if (!image || seen.has(image.name) || !isValidImageName(image.name)) continue;
        seen.add(image.name);
        out.push(image);
      }
    }
    return out;
  }

  find(name: string): Image | undefined {
    if (name === '.host') return HOST;
    // machined 262 finds no image by a name ending in `.raw`: a directory so named is listed, not found.
    if (!isValidImageName(name) || name.endsWith('.raw')) return undefined;
    for (const dir of this.directories) {
      const plain = describeAt(name, join(dir, name));
      if (plain) return plain;
      const raw = describeAt(name, join(dir, `${name}.raw`));
      if (raw?.type === 'raw') return raw;
    }
    return undefined;
  }

  /** Reads hostname, machine id, machine-info and os-release from a directory image. */
  metadata(image: Image): ImageMetadata {
    if (image.type !== 'directory') throw errnoFailure(95, 'metadata of a non-directory image');
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

  /** Renames an image within its directory; the read-only mark goes with it. */
  rename(image: Image, newName: string): void {
    if (this.find(newName)) throw errnoFailure(17);
    const target = join(dirname(image.path), fileName(image, newName));
    // An immutable directory cannot be renamed: lift the mark for the move and put it back.
    const immutable = image.type === 'directory' && image.readOnly;
    if (immutable) setImmutable(image.path, false);
    try {
      renameSync(image.path, target);
    } finally {
      if (immutable) setImmutable(renameSafe(target, image.path), true);
    }
  }

  /** Copies an image into the pool under a new name, read-only if asked; the copy runs beside other calls. */
  async clone(image: Image, newName: string, readOnly: boolean): Promise<void> {
    if (this.find(newName)) throw errnoFailure(17);
    const target = join(this.pool, fileName(image, newName));
    await cp(image.path, target, { recursive: true, preserveTimestamps: true, verbatimSymlinks: true, errorOnExist: true, force: false });
    if (image.type === 'directory' && image.readOnly) setImmutable(target, false);
    const copy = describeAt(newName, target);
    if (copy && copy.readOnly !== readOnly) this.setReadOnly(copy, readOnly);
  }

  setReadOnly(image: Image, readOnly: boolean): void {
    if (image.type === 'directory') {
      setImmutable(image.path, readOnly);
      return;
    }
    const mode = statSync(image.path).mode & 0o7777;
    chmodSync(image.path, readOnly ? mode & ~0o222 : mode | 0o200);
  }

  /** Deletes an image (a tree may take a while: it runs beside other calls). */
  async remove(image: Image): Promise<void> {
    if (image.type === 'directory' && image.readOnly) setImmutable(image.path, false);
    await rm(image.path, { recursive: true, force: false });
  }

  /**
   * Whether the image is in use: a machine runs from it (`roots`: the registered machines' root
   * directories), or someone (nspawn) holds a lock on its lock file `.#NAME.lck` beside it.
   */
  inUse(image: Image, roots: ReadonlySet<string>): boolean {
    if (roots.has(image.path)) return true;
    return lockHeld(join(dirname(image.path), `.#${basename(image.path)}.lck`));
  }
}

/**
 * Whether any process holds a lock (OFD, POSIX or flock, as nspawn and tools take them) on a file: the
 * kernel lists every lock in /proc/locks by device and inode. A lock file nobody holds is stale.
 */
function lockHeld(path: string): boolean {
  let st;
  try {
    st = statSync(path, { bigint: true });
  } catch {
    return false;
  }
  const major = ((st.dev >> 8n) & 0xfffn) | ((st.dev >> 32n) & ~0xfffn);
  const minor = (st.dev & 0xffn) | ((st.dev >> 12n) & ~0xffn);
  const id = `${major.toString(16).padStart(2, '0')}:${minor.toString(16).padStart(2, '0')}:${st.ino}`;
  try {
    return readFileSync('/proc/locks', 'utf8').split('\n').some((line) => line.split(/\s+/).includes(id));
  } catch {
    return false;
  }
}

/** The path an image has after a rename attempt: the new one when the move happened. */
function renameSafe(target: string, original: string): string {
  try {
    statSync(target);
    return target;
  } catch {
    return original;
  }
}
