// One credential-name rule for containers and VMs: systemd's (a valid file name that is also a valid
// descriptor name).
import { describe, expect, it } from 'vitest';
import { credentialNameRefusal, isValidCredentialName } from '../../../src/domain/credential-name.js';
import { parseSpawnArgs } from '../../../src/client/spawn-container-args.js';
import { splitCredential } from '../../../src/client/spawn-vm-values.js';

const valid = ['a', 'web.key', 'ssh.authorized_keys.root', 'with space', 'x'.repeat(255), 'at@sign+plus'];
const invalid = ['', '.', '..', 'a/b', 'a:b', 'x'.repeat(256), 'tab\there', 'é', 'del\x7f'];

describe('credential names', () => {
  it.each(valid)('accepts %j', (id) => expect(isValidCredentialName(id)).toBe(true));
  it.each(invalid)('refuses %j', (id) => expect(isValidCredentialName(id)).toBe(false));

  it('refuses the same names for containers and VMs, with the same message', () => {
    for (const id of [...valid, ...invalid]) {
      // The separator itself, and an empty id, are refused before the name is checked.
      if (id.includes(':') || id === '') continue;
      let container: string | undefined;
      try {
        parseSpawnArgs([`--set-credential=${id}:v`, '-D', '/nonexistent', '/bin/true']);
      } catch (e) {
        container = (e as Error).message;
      }
      let vm: string | undefined;
      try {
        splitCredential(`${id}:v`, '--set-credential');
      } catch (e) {
        vm = (e as Error).message;
      }
      const refused = !isValidCredentialName(id);
      expect(container?.includes(credentialNameRefusal(id)) ?? false, `container, ${JSON.stringify(id)}: ${container}`).toBe(refused);
      expect(vm?.includes(credentialNameRefusal(id)) ?? false, `vm, ${JSON.stringify(id)}: ${vm}`).toBe(refused);
    }
  });
});
