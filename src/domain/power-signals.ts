/**
 * The signals that ask a container's init to power off or reboot, as machined's clients send them to the
 * leader (machinectl poweroff/reboot through KillMachine): systemd as PID 1 powers off on SIGRTMIN+4 and
 * treats SIGINT as ctrl-alt-del (reboot). berth-spawn's control socket and berthctl's fallback use these.
 */
import { SIGRTMIN } from './signals.js';

export const POWEROFF_SIGNAL = SIGRTMIN + 4;
export const REBOOT_SIGNAL = 2; // SIGINT
