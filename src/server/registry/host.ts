// The synthetic `.host` machine machined lists first: the host itself, class `host`, leader PID 1, unit
// `-.slice`, root `/`, dated at boot, with vSockCid 1 (VMADDR_CID_LOCAL) when /dev/vsock exists.

import fs from 'node:fs';
import type { Machine } from './machine.js';
import { bootRealtimeUs } from '../../domain/process.js';
import { pidfdIdOf } from './leader.js';

function readMachineId(): string | undefined {
  try {
    const id = fs.readFileSync('/etc/machine-id', 'latin1').trim();
    return /^[0-9a-f]{32}$/.test(id) ? id : undefined;
  } catch {
    return undefined;
  }
}

export function hostMachine(): Machine {
  const pidfdId = pidfdIdOf(1);
  const id = readMachineId();
  return {
    name: '.host',
    ...(id ? { id } : {}),
    class: 'host',
    leader: { pid: 1, ...(pidfdId !== undefined ? { pidfdId } : {}) },
    rootDirectory: '/',
    ifIndices: [],
    ...(fs.existsSync('/dev/vsock') ? { vSockCid: 1 } : {}),
    unit: '-.slice',
    ownsScope: false,
    timestamp: { realtime: bootRealtimeUs(), monotonic: 0 },
    registeredBy: 0,
    allocateUnit: false,
  };
}
