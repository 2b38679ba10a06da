/**
 * berthd's parse worker (see src/varlink/parse-worker.ts): large messages to any of berthd's
 * sockets are parsed and validated here, off the event loop, against every interface berthd serves.
 */
import { serveParseWorker } from '../varlink/parse-worker.js';
import { IoSystemdMachine } from '../generated/io.systemd.Machine.js';
import { IoSystemdMachineImage } from '../generated/io.systemd.MachineImage.js';
import { IoSystemdUserDatabase } from '../generated/io.systemd.UserDatabase.js';
import { IoBerthMachine } from '../generated/io.berth.Machine.js';
import { IoBerthLauncher } from '../generated/io.berth.Launcher.js';

serveParseWorker([IoSystemdMachine, IoSystemdMachineImage, IoSystemdUserDatabase, IoBerthMachine, IoBerthLauncher]);
