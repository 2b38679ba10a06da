/**
 * org.freedesktop.machine1's images on D-Bus: the Manager's image methods (ListImages, GetImage,
 * RemoveImage, …, SetPoolLimit, CleanPool) and the Image objects at /org/freedesktop/machine1/image/NAME
 * with their properties and methods. Like image-api.ts this only translates: the checks and the file
 * system work are image-operations.ts's. Image properties never change in place (machined emits no
 * PropertiesChanged for them): a renamed image is a new object.
 */
import { DBusError, DBusErrors, errnoError, labelFromPath, pathForLabel, type CallContext, type InterfaceSpec, type MethodSpec, type PropertySpec, type SubtreeSpec } from '../dbus/index.js';
import { strerror } from '../dbus/unix-socket.js';
import { callerOf, IMAGE_PREFIX } from './machine-dbus-errors.js';
import { ImageError, type ImageOperations } from './image-operations.js';
import type { Image } from './images.js';

const UINT64_MAX = (1n << 64n) - 1n;
const NO_SUCH_IMAGE = 'org.freedesktop.machine1.NoSuchImage';

export const imagePath = (name: string): string => pathForLabel(IMAGE_PREFIX, name);

/** An ImageError as machined words it on D-Bus; anything else passes unchanged. */
function toDBus(err: unknown): unknown {
  if (!(err instanceof ImageError)) return err;
  const f = err.failure;
  switch (f.kind) {
    case 'noSuchImage':
      return new DBusError(NO_SUCH_IMAGE, `No image '${f.name}' known`);
    case 'invalidName':
      return new DBusError(DBusErrors.InvalidArgs, `Image name '${f.name}' is invalid.`);
    case 'invalidLimit':
      return new DBusError(DBusErrors.InvalidArgs, 'Invalid limit');
    case 'invalidMode':
      return new DBusError(DBusErrors.InvalidArgs, `Unknown mode '${f.mode}'.`);
    case 'permissionDenied':
      return new DBusError(DBusErrors.AccessDenied, 'Access denied');
    case 'poolLimitNotSupported':
      return new DBusError(DBusErrors.NotSupported, 'Quota is only supported on btrfs.');
    case 'tooManyOperations':
      return new DBusError(DBusErrors.LimitsExceeded, 'Too many ongoing operations.');
    case 'errno': {
      const prefix = f.during === 'rename' ? 'Failed to rename image: ' : f.during === 'metadata' ? 'Failed to read image metadata: ' : '';
      return errnoError(f.errno, prefix + strerror(f.errno));
    }
  }
}

async function dbus<T>(action: () => T | Promise<T>): Promise<T> {
  try {
    return await action();
  } catch (err) {
    throw toDBus(err);
  }
}

/** `KEY=VALUE` strings as a{ss}. */
function pairs(list: string[] | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const kv of list ?? []) {
    const eq = kv.indexOf('=');
    if (eq > 0) out.set(kv.slice(0, eq), kv.slice(eq + 1));
  }
  return out;
}

const t = (v: number | undefined, unknown: bigint) => (v === undefined ? unknown : BigInt(v));

/** One per-image method: its signatures and what it does to an image. */
interface ImageMethod {
  in: string;
  out: string;
  inNames: string[];
  outNames: string[];
  /** The Manager's name for it. */
  managerName: string;
  run(image: Image, args: any[], c: CallContext): unknown[] | Promise<unknown[]>;
}

function imageMethods(ops: ImageOperations): Record<string, ImageMethod> {
  const uid = async (c: CallContext) => ({ uid: (await callerOf(c)).uid });
  const meta = (image: Image) => ops.metadata(image);
  return {
    Remove: {
      in: '', out: '', inNames: [], outNames: [], managerName: 'RemoveImage',
      async run(image, _a, c) {
        await ops.remove(await uid(c), image.name);
        return [];
      },
    },
    Rename: {
      in: 's', out: '', inNames: ['new_name'], outNames: [], managerName: 'RenameImage',
      async run(image, [newName]: any[], c) {
        ops.update(await uid(c), image.name, { newName });
        return [];
      },
    },
    Clone: {
      in: 'sb', out: '', inNames: ['new_name', 'read_only'], outNames: [], managerName: 'CloneImage',
      async run(image, [newName, readOnly]: any[], c) {
        await ops.clone(await uid(c), image.name, newName, readOnly);
        return [];
      },
    },
    MarkReadOnly: {
      in: 'b', out: '', inNames: ['read_only'], outNames: [], managerName: 'MarkImageReadOnly',
      async run(image, [readOnly]: any[], c) {
        ops.update(await uid(c), image.name, { readOnly });
        return [];
      },
    },
    SetLimit: {
      in: 't', out: '', inNames: ['size'], outNames: [], managerName: 'SetImageLimit',
      async run(image, [size]: any[], c) {
        ops.update(await uid(c), image.name, { limit: BigInt(size) });
        return [];
      },
    },
    GetHostname: { in: '', out: 's', inNames: [], outNames: ['hostname'], managerName: 'GetImageHostname', run: (i) => [meta(i).hostname ?? ''] },
    GetMachineID: {
      in: '', out: 'ay', inNames: [], outNames: ['id'], managerName: 'GetImageMachineID',
      run: (i) => {
        const id = meta(i).machineId;
        return [id ? Buffer.from(id, 'hex') : Buffer.alloc(0)];
      },
    },
    GetMachineInfo: { in: '', out: 'a{ss}', inNames: [], outNames: ['machine_info'], managerName: 'GetImageMachineInfo', run: (i) => [pairs(meta(i).machineInfo)] },
    GetOSRelease: { in: '', out: 'a{ss}', inNames: [], outNames: ['os_release'], managerName: 'GetImageOSRelease', run: (i) => [pairs(meta(i).OSRelease)] },
  };
}

export interface ImageBus {
  /** The image methods to add to the Manager interface. */
  managerMethods: Record<string, MethodSpec>;
  images: SubtreeSpec;
}

export function imageBus(ops: ImageOperations): ImageBus {
  const methods = imageMethods(ops);
  const caller = async (c: CallContext) => ({ uid: (await callerOf(c)).uid });

  /** The image of an object path; a vanished image is an unknown object. */
  const imageAt = (c: CallContext): Image => {
    const label = labelFromPath(IMAGE_PREFIX, c.path);
    const image = label === undefined ? undefined : ops.find(label);
    if (!image) throw new DBusError(DBusErrors.UnknownObject, `Unknown object '${c.path}'.`);
    return image;
  };

  const managerMethods: Record<string, MethodSpec> = {
    GetImage: {
      in: 's', out: 'o', inNames: ['name'], outNames: ['image'],
      handler: ([name]: any[]) =>
        dbus(() => {
          // machined looks the name up without judging it: a bad name is just unknown.
          const image = ops.find(name);
          if (!image) throw new ImageError({ kind: 'noSuchImage', name });
          return [imagePath(image.name)];
        }),
    },
    ListImages: {
      in: '', out: 'a(ssbttto)', inNames: [], outNames: ['images'],
      handler: () =>
        dbus(() => [
          ops.list().map((i) => [i.name, i.type, i.readOnly, t(i.creationTimestamp, 0n), t(i.modificationTimestamp, 0n), t(i.usage, UINT64_MAX), imagePath(i.name)]),
        ]),
    },
    SetPoolLimit: {
      in: 't', out: '', inNames: ['size'], outNames: [],
      handler: async ([size]: any[], c) => dbus(async () => ops.setPoolLimit(await caller(c), BigInt(size))),
    },
    CleanPool: {
      in: 's', out: 'a(st)', inNames: ['mode'], outNames: ['images'],
      handler: async ([mode]: any[], c) => dbus(async () => [(await ops.cleanPool(await caller(c), mode)).map((r) => [r.name, t(r.usageExclusive, UINT64_MAX)])]),
    },
  };
  for (const m of Object.values(methods)) {
    managerMethods[m.managerName] = {
      in: `s${m.in}`, out: m.out, inNames: ['name', ...m.inNames], outNames: m.outNames,
      handler: (args: any[], c) => dbus(() => m.run(ops.get(args[0]), args.slice(1), c)),
    };
  }

  const prop = (type: string, get: (i: Image) => unknown): PropertySpec => ({ type, emitsChange: 'false', get: (c) => get(imageAt(c)) });
  const specs: Record<string, MethodSpec> = {};
  for (const [name, m] of Object.entries(methods)) {
    specs[name] = { in: m.in, out: m.out, handler: (args: any[], c) => dbus(() => m.run(imageAt(c), args, c)) };
  }
  const imageInterface: InterfaceSpec = {
    name: 'org.freedesktop.machine1.Image',
    methods: specs,
    properties: {
      Name: prop('s', (i) => i.name),
      Path: prop('s', (i) => i.path),
      Type: prop('s', (i) => i.type),
      ReadOnly: prop('b', (i) => i.readOnly),
      CreationTimestamp: prop('t', (i) => t(i.creationTimestamp, 0n)),
      ModificationTimestamp: prop('t', (i) => t(i.modificationTimestamp, 0n)),
      Usage: prop('t', (i) => t(i.usage, UINT64_MAX)),
      Limit: prop('t', (i) => t(i.limit, UINT64_MAX)),
      UsageExclusive: prop('t', (i) => t(i.usageExclusive, UINT64_MAX)),
      LimitExclusive: prop('t', (i) => t(i.limitExclusive, UINT64_MAX)),
    },
  };
  const images: SubtreeSpec = {
    interfaces: [imageInterface],
    exists: (path) => {
      const label = labelFromPath(IMAGE_PREFIX, path);
      return label !== undefined && ops.find(label) !== undefined;
    },
    children: () => ops.list().map((i) => imagePath(i.name)),
  };
  return { managerMethods, images };
}
