/**
 * io.systemd.MachineImage bound to the image store: List as machined 257 answers it (one image by
 * name, or a stream that needs `more`; `.host` first; NoSuchImage when nothing matches), and
 * Update, Clone and Remove of directory and raw images for privileged callers.
 */
import { InvalidParameterError, PermissionDeniedError, SystemError, ExpectedMoreError, VarlinkError } from '../varlink/errors.js';
import { Replies, type Handlers } from '../varlink/call.js';
import {
  NoSuchImage,
  type IoSystemdMachineImageMethods,
  type ListResult,
  type AcquireMetadata,
} from '../generated/io.systemd.MachineImage.js';
import type { BerthContext } from './context.js';
import type { PeerCredentials } from '../varlink/peer.js';
import { ImageStore, isValidImageName, type Image } from './images.js';

function errnoOf(err: unknown): number {
  const e = (err as { errno?: number }).errno;
  return typeof e === 'number' ? Math.abs(e) : 5;
}

export function imageApi(ctx: BerthContext): Handlers<IoSystemdMachineImageMethods> {
  const store = new ImageStore(ctx.options.imageDirectories);

  const render = (image: Image, metadata: AcquireMetadata | null | undefined): ListResult => {
    const out: ListResult = { name: image.name, path: image.path, type: image.type, class: 'machine', readOnly: image.readOnly };
    if (image.creationTimestamp !== undefined) out.creationTimestamp = image.creationTimestamp;
    if (image.modificationTimestamp !== undefined) out.modificationTimestamp = image.modificationTimestamp;
    if (image.usage !== undefined) out.usage = image.usage;
    if (image.usageExclusive !== undefined) out.usageExclusive = image.usageExclusive;
    if (metadata === 'yes' || metadata === 'graceful') {
      try {
        Object.assign(out, store.metadata(image));
      } catch (err) {
        if (metadata === 'yes') throw new SystemError(errnoOf(err));
      }
    }
    return out;
  };

  const lookup = (name: string): Image => {
    if (!isValidImageName(name)) throw new InvalidParameterError('name');
    const image = store.find(name);
    if (!image) throw new NoSuchImage();
    return image;
  };

  /**
   * The order machined 257 checks in: the names' syntax, then the image's existence, then the
   * caller, then what is asked. The host's own image cannot be changed (EROFS), though an Update
   * that changes nothing succeeds.
   */
  const modify = (peer: PeerCredentials, name: string, newName: string | null | undefined, changes: boolean, action: (image: Image) => void) => {
    if (!isValidImageName(name)) throw new InvalidParameterError('name');
    if (newName !== undefined && newName !== null && (!isValidImageName(newName) || newName === '.host')) throw new InvalidParameterError('newName');
    const image = lookup(name);
    if (!ctx.policy.isPrivileged(peer)) throw new PermissionDeniedError();
    if (image.name === '.host') {
      if (changes) throw new SystemError(30);
      return {};
    }
    try {
      action(image);
    } catch (err) {
      if (err instanceof VarlinkError) throw err;
      throw new SystemError(errnoOf(err));
    }
    return {};
  };

  return {
    List: ({ name, acquireMetadata }, call) => {
      if (name !== undefined && name !== null) return render(lookup(name), acquireMetadata);
      if (!call.more) throw new ExpectedMoreError();
      const images = store.list();
      return new Replies(
        images.map((i) => render(i, acquireMetadata)),
        () => new NoSuchImage(),
      );
    },
    Update: ({ name, newName, readOnly, limit }, call) => {
      // The interface check lets any string through for integers; 257 takes a decimal one for the limit.
      if (typeof limit === 'string' && !/^[0-9]+$/.test(limit)) throw new InvalidParameterError('limit');
      const setsReadOnly = readOnly !== undefined && readOnly !== null;
      const setsLimit = limit !== undefined && limit !== null;
      const renames = newName !== undefined && newName !== null;
      return modify(call.peer, name, newName, renames || setsReadOnly || setsLimit, (image) => {
        if (setsReadOnly || setsLimit) throw Object.assign(new Error('not supported'), { errno: 95 });
        if (renames) store.rename(image, newName);
      });
    },
    Clone: ({ name, newName }, call) => modify(call.peer, name, newName, true, (image) => store.clone(image, newName)),
    Remove: ({ name }, call) => modify(call.peer, name, undefined, true, (image) => store.remove(image)),
  };
}
