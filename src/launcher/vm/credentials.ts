// The credentials a VM is started with: --set-credential values as given, --load-credential files read at
// launch time (absolute, relative to the working directory, or inside $CREDENTIALS_DIRECTORY).

import { readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { VmUsageError, type Credential, type CredentialSource } from './options.js';

export function resolveCredentials(sources: readonly CredentialSource[], env: NodeJS.ProcessEnv = process.env): Credential[] {
  return sources.map((c) => {
    if (c.value) return { id: c.id, value: c.value };
    const path = c.path!;
    const candidates = [path];
    if (!isAbsolute(path) && env.CREDENTIALS_DIRECTORY) candidates.push(join(env.CREDENTIALS_DIRECTORY, path));
    for (const p of candidates) {
      try {
        return { id: c.id, value: readFileSync(p) };
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new VmUsageError(`--load-credential: cannot read ${p}: ${(e as Error).message}`);
      }
    }
    throw new VmUsageError(`--load-credential: no such file: ${path}`);
  });
}
