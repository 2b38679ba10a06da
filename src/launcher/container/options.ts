/** What a container launch needs, validated: the CLI and berthd's launch service both build this. */
import type { BindMount } from '../../domain/option-values.js';
import type { PrivateUsers } from '../uid-range.js';
import type { RegisterMode } from '../registry-client.js';

export type { BindMount };
export interface Credential { id: string; data: Buffer }
export type LinkJournal = 'no' | 'host' | 'try-host' | 'guest' | 'try-guest' | 'auto';

export interface ContainerOptions {
  directory: string;
  name: string;
  uuid: string; // with dashes
  boot: boolean;
  /** With boot: arguments for init; without: the command to run as PID 1. */
  command: string[];
  privateUsers: PrivateUsers;
  binds: BindMount[];
  setenv: [string, string][];
  credentials: Credential[];
  linkJournal: LinkJournal;
  networkVeth: boolean;
  register: RegisterMode;
  runtimeDir: string;
  notifyReady: boolean;
  ttys: string[];
  /** Sockets handed to PID 1 as fd 3… (LISTEN_FDS). */
  listenFds: number[];
  listenFdNames?: string;
  killSignal: number;
  quiet: boolean;
  /** Where the host keeps journals (`--link-journal`); /var/log/journal unless a test moves it. */
  hostJournalDir: string;
  /** Where to print the container's /dev/console output; default: the launcher's stdout. */
  consoleOutput?: NodeJS.WritableStream;
}

export class ContainerOptionError extends Error {
  override name = 'ContainerOptionError';
}

