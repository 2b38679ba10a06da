// The one rule for credential names (`--set-credential=ID:VALUE`, `--load-credential=ID:PATH`), for
// containers and VMs alike, as systemd reads them: a name is used as a file name inside the machine and
// may one day travel as a socket-activation descriptor name, so it must be both — 1 to 255 printable
// ASCII characters, no "/" and no ":", and neither "." nor "..".

const NAME_MAX = 255;

export function isValidCredentialName(id: string): boolean {
  if (id.length === 0 || id.length > NAME_MAX || id === '.' || id === '..') return false;
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x2f || c === 0x3a) return false;
  }
  return true;
}

/** The one message a bad credential name is refused with, by containers and VMs alike. */
export const credentialNameRefusal = (id: string): string =>
  `invalid credential name ${JSON.stringify(id)}: 1 to 255 printable ASCII characters, no "/" or ":", not "." or ".."`;
