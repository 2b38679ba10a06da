/**
 * io.systemd.MachineImage as machined 262 serves it: List (one image by name, or a stream that needs
 * `more`; NoSuchImage when nothing matches), Update, Clone, Remove, SetPoolLimit and CleanPool (a stream
 * of the removed images). This only translates: the checks and the file system work are
 * image-operations.ts's, shared with the D-Bus binding.
 */
import { InvalidParameterError, PermissionDeniedError, SystemError, ExpectedMoreError } from '../varlink/errors.js';
import { Replies, type Handlers } from '../varlink/call.js';
import {
  NoSuchImage,
  NotSupported,
  TooManyOperations,
  type IoSystemdMachineImageMethods,
  type ListResult,
  type AcquireMetadata,
} from '../generated/io.systemd.MachineImage.js';
import type { BerthContext } from './context.js';
import type { PeerCredentials } from '../varlink/peer.js';
import type { Image } from './images.js';
import { ImageError, ImageOperations } from './image-operations.js';

/** An ImageError as machined 262 names it over Varlink; anything else passes unchanged. */
function toVarlink(err: unknown): unknown {
  if (!(err instanceof ImageError)) return err;
  const f = err.failure;
  switch (f.kind) {
    case 'noSuchImage':
      return new NoSuchImage();
    case 'invalidName':
      return new InvalidParameterError(f.parameter);
    case 'invalidLimit':
      return new InvalidParameterError('limit');
    case 'invalidMode':
      return new InvalidParameterError('mode');
    case 'permissionDenied':
      return new PermissionDeniedError();
    case 'poolLimitNotSupported':
      return new NotSupported();
    case 'tooManyOperations':
      return new TooManyOperations();
    case 'errno':
      return new SystemError(f.errno);
  }
}

async function varlink<T>(action: () => T | Promise<T>): Promise<T> {
  try {
    return await action();
  } catch (err) {
    throw toVarlink(err);
  }
}

const callerOf = (peer: PeerCredentials) => ({ uid: peer.uid });

export function imageApi(ctx: BerthContext, ops = ImageOperations.of(ctx)): Handlers<IoSystemdMachineImageMethods> {
  const render = (image: Image, metadata: AcquireMetadata | null | undefined): ListResult => {
    const out: ListResult = { name: image.name, path: image.path, type: image.type, class: 'machine', readOnly: image.readOnly };
    for (const key of ['creationTimestamp', 'modificationTimestamp', 'usage', 'usageExclusive', 'limit', 'limitExclusive'] as const) {
      if (image[key] !== undefined) out[key] = image[key];
    }
    if (metadata === 'yes' || metadata === 'graceful') {
      try {
        Object.assign(out, ops.metadata(image));
      } catch (err) {
        if (metadata === 'yes') throw err;
      }
    }
    return out;
  };

  return {
    List: ({ name, acquireMetadata }, call) =>
      varlink(() => {
        if (name !== undefined && name !== null) return render(ops.get(name), acquireMetadata);
        if (!call.more) throw new ExpectedMoreError();
        return new Replies(
          ops.list().map((i) => render(i, acquireMetadata)),
          () => new NoSuchImage(),
        );
      }),
    Update: ({ name, newName, readOnly, limit }, call) =>
      varlink(() => {
        // The interface check lets any string through for integers; machined takes a decimal one for the limit.
        if (typeof limit === 'string' && !/^[0-9]+$/.test(limit)) throw new InvalidParameterError('limit');
        ops.update(callerOf(call.peer), name, { newName, readOnly, limit: limit === undefined || limit === null ? limit : BigInt(limit) });
        return {};
      }),
    Clone: ({ name, newName, readOnly }, call) =>
      varlink(async () => {
        await ops.clone(callerOf(call.peer), name, newName, readOnly === true);
        return {};
      }),
    Remove: ({ name }, call) =>
      varlink(async () => {
        await ops.remove(callerOf(call.peer), name);
        return {};
      }),
    SetPoolLimit: ({ limit }, call) => varlink(() => ops.setPoolLimit(callerOf(call.peer), limit)),
    CleanPool: ({ mode }, call) =>
      varlink(async () => {
        if (!call.more) throw new ExpectedMoreError();
        return new Replies(await ops.cleanPool(callerOf(call.peer), mode), () => new NoSuchImage());
      }),
  };
}
