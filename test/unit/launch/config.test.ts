import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig, splitWords } from '../../../src/server/launch/config.js';

describe('NAME.berth configuration', () => {
  it('turns settings into berth-spawn options, in order, with the command last', () => {
    const c = parseConfig('web', '/etc/berth/machines/web.berth', [
      '# a web server',
      '[Spawn]',
      'Directory=/var/lib/machines/web',
      'PrivateUsers=pick',
      'Bind=/srv/a:/a',
      'Bind=/srv/b:/b',
      'NetworkVeth=yes',
      'Boot=no',
      "Command=/bin/sh -c 'exec httpd -f -p 80'",
    ].join('\n'));
    expect(c.class).toBe('container');
    expect(c.argv).toEqual([
      '--directory=/var/lib/machines/web',
      '--private-users=pick',
      '--bind=/srv/a:/a',
      '--bind=/srv/b:/b',
      '--network-veth',
      '--',
      '/bin/sh',
      '-c',
      'exec httpd -f -p 80',
    ]);
  });

  it('makes a VM configuration into berth-spawn --vm with the kernel command line last', () => {
    const c = parseConfig('v', '/x/v.berth', '[Spawn]\nClass=vm\nLinux=/boot/vmlinux\nInitrd=/boot/a\nInitrd=/boot/b\nKernelCommandLine=console=ttyS0 quiet\n');
    expect(c.class).toBe('vm');
    expect(c.argv).toEqual(['--vm', '--linux=/boot/vmlinux', '--initrd=/boot/a', '--initrd=/boot/b', 'console=ttyS0', 'quiet']);
  });

  it('refuses unknown keys, sections, values and missing settings with the line', () => {
    const bad = (text: string) => {
      try {
        parseConfig('x', '/c/x.berth', text);
      } catch (e) {
        expect(e).toBeInstanceOf(ConfigError);
        return `${(e as ConfigError).line ?? '-'} ${(e as ConfigError).reason}`;
      }
      throw new Error('accepted');
    };
    expect(bad('[Spawn]\nDirectory=/x\nPrivateUser=pick')).toBe("3 unknown setting 'PrivateUser' for a container");
    expect(bad('[Exec]\nBoot=yes')).toBe('1 unknown section [Exec]');
    expect(bad('Directory=/x')).toBe('1 settings must follow [Spawn]');
    expect(bad('[Spawn]\nDirectory=/x\nBoot=maybe')).toBe('3 Boot takes yes or no');
    expect(bad('[Spawn]\nClass=pod')).toBe("- Class must be container or vm, not 'pod'");
    expect(bad('[Spawn]\nBoot=yes')).toBe('- Directory= is required for a container');
    expect(bad('[Spawn]\nDirectory=/x\nLinux=/k')).toBe("3 unknown setting 'Linux' for a container");
    expect(bad("[Spawn]\nDirectory=/x\nCommand=echo 'open")).toBe('3 unterminated quote');
    expect(bad('[Spawn]\nClass=vm\nCommand=/bin/sh')).toBe('3 Command does not apply to a vm');
  });

  it('splits words like a shell, without expanding anything', () => {
    expect(splitWords(`a "b c" 'd "e"' f\\ g "h\\"i" $HOME ''`)).toEqual(['a', 'b c', 'd "e"', 'f g', 'h"i', '$HOME', '']);
  });
});
