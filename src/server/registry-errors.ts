/** Registry failures → the wire errors machined 257 sends for them. */
import { InvalidParameterError, PermissionDeniedError, SystemError, type VarlinkError } from '../varlink/errors.js';
import { MachineExists, NoSuchMachine, NotSupported } from '../generated/io.systemd.Machine.js';
import type { RegistryError } from './registry/machine.js';

export function toVarlinkError(e: RegistryError): VarlinkError {
  if ('invalidParameter' in e) return new InvalidParameterError(e.invalidParameter);
  if ('errno' in e) return new SystemError(e.errno);
  if ('permissionDenied' in e) return new PermissionDeniedError();
  switch (e.error) {
    case 'io.systemd.Machine.MachineExists':
      return new MachineExists();
    case 'io.systemd.Machine.NoSuchMachine':
      return new NoSuchMachine();
    case 'io.systemd.Machine.NotSupported':
      return new NotSupported();
  }
  return new SystemError(5);
}
