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

  const modify = (peerUid: number, name: string, action: (image: Image) => void) => {
    const image = lookup(name);
    if (!ctx.policy.isPrivileged({ uid: peerUid, gid: -1, pid: 0 })) throw new PermissionDeniedError();
    if (image.name === '.host') throw new SystemError(95);
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
    Update: ({ name, newName, readOnly, limit }, call) =>
      modify(call.peer.uid, name, (image) => {
        if (newName !== undefined && newName !== null && !isValidImageName(newName)) throw new InvalidParameterError('newName');
        if ((readOnly !== undefined && readOnly !== null) || (limit !== undefined && limit !== null)) {
          throw Object.assign(new Error('not supported'), { errno: 95 });
        }
        if (newName) store.rename(image, newName);
      }),
    Clone: ({ name, newName }, call) => {
      if (!isValidImageName(newName) || newName === '.host') throw new InvalidParameterError('newName');
      return modify(call.peer.uid, name, (image) => store.clone(image, newName));
    },
    Remove: ({ name }, call) => modify(call.peer.uid, name, (image) => store.remove(image)),
  };
}
