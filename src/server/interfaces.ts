// The Varlink interfaces berthd serves, in one list: the daemon implements them and the parse worker validates
// large messages against them, so the two can never disagree.

import { IoSystemdMachine } from '../generated/io.systemd.Machine.js';
import { IoSystemdMachineImage } from '../generated/io.systemd.MachineImage.js';
import { IoSystemdUserDatabase } from '../generated/io.systemd.UserDatabase.js';
import { IoBerthMachine } from '../generated/io.berth.Machine.js';
import { IoBerthLauncher } from '../generated/io.berth.Launcher.js';
import { IoSystemdResolveHook } from '../generated/io.systemd.Resolve.Hook.js';

export { IoSystemdMachine, IoSystemdMachineImage, IoSystemdUserDatabase, IoBerthMachine, IoBerthLauncher, IoSystemdResolveHook };

/** Every interface berthd implements (io.systemd and org.varlink.service come with the Varlink server). */
export const SERVED_INTERFACES = [IoSystemdMachine, IoSystemdMachineImage, IoSystemdUserDatabase, IoBerthMachine, IoBerthLauncher, IoSystemdResolveHook] as const;
