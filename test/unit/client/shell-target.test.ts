// How `berthctl shell` and `berthctl login` read their arguments (machinectl's syntax).
import { describe, expect, it } from 'vitest';
import { parseShellTarget } from '../../../src/client/shell-verbs.js';

describe('parseShellTarget', () => {
  it('takes [USER@]NAME, then an absolute program path and its arguments (argv[0] included)', () => {
    expect(parseShellTarget('shell', ['web'])).toEqual({ name: 'web' });
    expect(parseShellTarget('shell', ['alice@web'])).toEqual({ name: 'web', user: 'alice' });
    expect(parseShellTarget('shell', ['alice@'])).toEqual({ name: '.host', user: 'alice' });
    expect(parseShellTarget('shell', ['web'], 'bob')).toEqual({ name: 'web', user: 'bob' });
    expect(parseShellTarget('shell', ['web', '/bin/sh', '-c', 'echo hi'])).toEqual({ name: 'web', path: '/bin/sh', args: ['/bin/sh', '-c', 'echo hi'] });
    expect(parseShellTarget('login', ['web'])).toEqual({ name: 'web' });
  });

  it('refuses what it cannot run, as usage errors (exit 2)', () => {
    for (const [verb, args] of [['shell', []], ['shell', ['web', 'sh']], ['login', []], ['login', ['web', '/bin/sh']]] as const) {
      expect(() => parseShellTarget(verb, [...args])).toThrow(expect.objectContaining({ exitCode: 2 }));
    }
  });
});
