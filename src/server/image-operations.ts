/**
 * The image operations both bindings serve (io.systemd.MachineImage over Varlink, the Manager's and the
 * Image objects' methods over D-Bus): the checks in the order machined 262 makes them (the names'
 * syntax, the image's existence, then the caller, then what is asked), the host and vendor images
 * refused as read-only, and the pool's limit answered as unsupported (berth sets up no btrfs quota).
 * Failures are thrown as ImageError; each binding words them as machined does on its protocol.
 */
import type { BerthContext } from './context.js';
import { ImageStore, isHiddenImage, isHostImage, isValidImageName, isVendorImage, type Image, type ImageMetadata } from './images.js';

/** What went wrong, for the binding to name. */
export type ImageFailure =
  | { kind: 'noSuchImage'; name: string }
  | { kind: 'invalidName'; parameter: 'name' | 'newName'; name: string }
  | { kind: 'invalidLimit' }
  | { kind: 'invalidMode'; mode: string }
  | { kind: 'permissionDenied' }
  | { kind: 'poolLimitNotSupported' }
  /** As many copies and removals as machined allows are already running. */
  | { kind: 'tooManyOperations' }
  /** A system error; `during` names the step whose failure machined's D-Bus message prefixes. */
  | { kind: 'errno'; errno: number; during?: 'rename' | 'metadata' };

export class ImageError extends Error {
  constructor(readonly failure: ImageFailure) {
    super(failure.kind);
  }
}

/** Who asks: the uid the transport vouches for. */
export interface ImageCaller {
  uid: number;
}

export interface ImageChanges {
  newName?: string | null;
  readOnly?: boolean | null;
  /** Bytes; null or undefined leaves the limit alone. */
  limit?: number | bigint | null;
}

export type CleanMode = 'all' | 'hidden';

export interface Cleaned {
  name: string;
  usageExclusive?: number;
}

const EROFS = 30;
const EIO = 5;
const EBUSY = 16;

const errnoOf = (err: unknown): number => {
  const e = (err as { errno?: number }).errno;
  return typeof e === 'number' ? Math.abs(e) : EIO;
};

const asImageError = (err: unknown, during?: 'rename' | 'metadata'): ImageError =>
  err instanceof ImageError ? err : new ImageError({ kind: 'errno', errno: errnoOf(err), ...(during ? { during } : {}) });

/** Runs a file system step, turning its failure into an ImageError. */
function step<T>(action: () => T, during?: 'rename' | 'metadata'): T {
  try {
    return action();
  } catch (err) {
    throw asImageError(err, during);
  }
}

/** machined's bound on copies and removals running at once. */
const MAX_OPERATIONS = 64;
const shared = new WeakMap<BerthContext, ImageOperations>();

export class ImageOperations {
  readonly store: ImageStore;
  private running = 0;

  constructor(private readonly ctx: BerthContext) {
    this.store = new ImageStore(ctx.options.imageDirectories);
  }

  /** The one instance of a daemon, so that both bindings count the same running operations. */
  static of(ctx: BerthContext): ImageOperations {
    let ops = shared.get(ctx);
    if (!ops) shared.set(ctx, (ops = new ImageOperations(ctx)));
    return ops;
  }

  /** A copy or removal, counted against machined's bound. */
  private async background<T>(action: () => Promise<T>): Promise<T> {
    if (this.running >= MAX_OPERATIONS) throw new ImageError({ kind: 'tooManyOperations' });
    this.running++;
    try {
      return await action();
    } catch (err) {
      throw asImageError(err);
    } finally {
      this.running--;
    }
  }

  get poolPath(): string {
    return this.store.pool;
  }

  list(): Image[] {
    return this.store.list();
  }

  /** The image of a name, without judging the name (D-Bus GetImage and object paths answer "unknown"). */
  find(name: string): Image | undefined {
    return this.store.find(name);
  }

  /** The image of a valid name. */
  get(name: string, parameter: 'name' | 'newName' = 'name'): Image {
    if (!isValidImageName(name)) throw new ImageError({ kind: 'invalidName', parameter, name });
    const image = this.store.find(name);
    if (!image) throw new ImageError({ kind: 'noSuchImage', name });
    return image;
  }

  metadata(image: Image): ImageMetadata {
    return step(() => this.store.metadata(image), 'metadata');
  }

  private authorize(caller: ImageCaller): void {
    if (!this.ctx.policy.isPrivileged({ uid: caller.uid, gid: -1, pid: 0 })) throw new ImageError({ kind: 'permissionDenied' });
  }

  private checkNewName(newName: string): void {
    if (!isValidImageName(newName)) throw new ImageError({ kind: 'invalidName', parameter: 'newName', name: newName });
  }

  /**
   * Rename, then read-only, then limit, as machined applies them; a failure of the read-only or limit
   * step is reported after the other steps ran. The host and vendor images refuse any change (EROFS).
   */
  update(caller: ImageCaller, name: string, changes: ImageChanges): void {
    if (!isValidImageName(name)) throw new ImageError({ kind: 'invalidName', parameter: 'name', name });
    const { newName, readOnly, limit } = changes;
    const renames = newName !== undefined && newName !== null;
    if (renames) this.checkNewName(newName);
    const image = this.get(name);
    this.authorize(caller);
    const setsReadOnly = readOnly !== undefined && readOnly !== null;
    const setsLimit = limit !== undefined && limit !== null;
    if (!renames && !setsReadOnly && !setsLimit) return;
    if (isHostImage(image) || isVendorImage(image)) throw new ImageError({ kind: 'errno', errno: EROFS, ...(renames ? { during: 'rename' as const } : {}) });
    // The host's name is always taken (machined 262: EBUSY).
    if (renames && newName === '.host') throw new ImageError({ kind: 'errno', errno: EBUSY, during: 'rename' });
    let current = image;
    if (renames) {
      step(() => this.store.rename(image, newName), 'rename');
      current = this.store.find(newName) ?? image;
    }
    let deferred: ImageError | undefined;
    if (setsReadOnly) {
      try {
        // Hidden images are read-only for good (machined 262).
        if (isHiddenImage(current)) throw new ImageError({ kind: 'errno', errno: EROFS });
        step(() => this.store.setReadOnly(current, readOnly));
      } catch (err) {
        deferred ??= err as ImageError;
      }
    }
    // Limits need btrfs quota groups, which berth does not set up.
    if (setsLimit) deferred ??= new ImageError({ kind: 'errno', errno: 95 });
    if (deferred) throw deferred;
  }

  async clone(caller: ImageCaller, name: string, newName: string, readOnly: boolean): Promise<void> {
    if (this.running >= MAX_OPERATIONS) throw new ImageError({ kind: 'tooManyOperations' });
    if (!isValidImageName(name)) throw new ImageError({ kind: 'invalidName', parameter: 'name', name });
    this.checkNewName(newName);
    const image = this.get(name);
    this.authorize(caller);
    if (isHostImage(image)) throw new ImageError({ kind: 'errno', errno: EROFS });
    if (newName === '.host') throw new ImageError({ kind: 'errno', errno: EBUSY });
    await this.background(() => this.store.clone(image, newName, readOnly));
  }

  async remove(caller: ImageCaller, name: string): Promise<void> {
    if (this.running >= MAX_OPERATIONS) throw new ImageError({ kind: 'tooManyOperations' });
    const image = this.get(name);
    this.authorize(caller);
    if (isHostImage(image) || isVendorImage(image)) throw new ImageError({ kind: 'errno', errno: EROFS });
    await this.background(() => this.store.remove(image));
  }

  /** A size in bytes, or UINT64_MAX for no limit; berth has no quota to apply it with. */
  setPoolLimit(caller: ImageCaller, limit: number | bigint | string): never {
    const ok = typeof limit === 'bigint' ? limit >= 0n : typeof limit === 'number' ? Number.isInteger(limit) && limit >= 0 : /^[0-9]+$/.test(limit);
    if (!ok) throw new ImageError({ kind: 'invalidLimit' });
    this.authorize(caller);
    throw new ImageError({ kind: 'poolLimitNotSupported' });
  }

  /** Removes the unused images (all, or the hidden ones), never the host's or the vendor's; lists what went. */
  async cleanPool(caller: ImageCaller, mode: string): Promise<Cleaned[]> {
    if (this.running >= MAX_OPERATIONS) throw new ImageError({ kind: 'tooManyOperations' });
    if (mode !== 'all' && mode !== 'hidden') throw new ImageError({ kind: 'invalidMode', mode });
    this.authorize(caller);
    const roots = new Set([...this.ctx.registry.list()].flatMap((m) => (m.rootDirectory ? [m.rootDirectory] : [])));
    return this.background(async () => {
      const removed: Cleaned[] = [];
      for (const image of this.store.list()) {
        if (isHostImage(image) || isVendorImage(image)) continue;
        if (mode === 'hidden' && !isHiddenImage(image)) continue;
        if (this.store.inUse(image, roots)) continue;
        await this.store.remove(image);
        removed.push({ name: image.name, ...(image.usageExclusive !== undefined ? { usageExclusive: image.usageExclusive } : {}) });
      }
      return removed;
    });
  }
}
