import { describe, expect, it } from 'vitest';
import { parseOsRelease } from '../../../src/server/registry/metadata.js';

describe('os-release as List reports it', () => {
  it('gives KEY=VALUE with quotes removed, in file order, without comments', () => {
    const text = '# comment\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\n\nID=debian\nX=\'single\'\nY="a\\"b\\\\c"\n';
    expect(parseOsRelease(text)).toEqual([
      'PRETTY_NAME=Debian GNU/Linux 12 (bookworm)',
      'NAME=Debian GNU/Linux',
      'VERSION_ID=12',
      'ID=debian',
      'X=single',
      'Y=a"b\\c',
    ]);
  });
});
