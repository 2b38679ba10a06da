// berthctl -H's pieces: the remote shell quoting, the [USER@]HOST[:PORT] form, and taking -H off the command line.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { shellQuote, sshTarget, withoutHost } from '../../../src/client/remote.js';

describe('shellQuote', () => {
  it('leaves plain words alone and quotes the rest so that sh gives them back unchanged', () => {
    expect(shellQuote('list')).toBe('list');
    expect(shellQuote('--runtime-dir=/run')).toBe('--runtime-dir=/run');
    for (const w of ['{"name": "a b"}', "it's", '$(rm -rf /)', 'a;b', '', '*', 'x\ny']) {
      const r = spawnSync('sh', ['-c', `printf %s ${shellQuote(w)}`], { encoding: 'utf8' });
      expect(r.stdout).toBe(w);
    }
  });
});

describe('sshTarget', () => {
  it('splits user, host and port', () => {
    expect(sshTarget('box')).toEqual(['box']);
    expect(sshTarget('root@box')).toEqual(['root@box']);
    expect(sshTarget('root@10.0.0.1:2222')).toEqual(['-p', '2222', 'root@10.0.0.1']);
    expect(sshTarget('[::1]:22')).toEqual(['-p', '22', '::1']);
  });
  it('refuses what ssh would take for an option or garbage', () => {
    for (const bad of ['-oProxyCommand=x', 'a b', 'a@', 'h:port', '']) expect(() => sshTarget(bad), bad).toThrow(/Invalid host/);
  });
});

describe('withoutHost', () => {
  it('drops the first -H and its value, in each spelling', () => {
    expect(withoutHost(['-H', 'box', 'list'])).toEqual(['list']);
    expect(withoutHost(['-Hbox', 'list'])).toEqual(['list']);
    expect(withoutHost(['--host=box', '-a', 'list'])).toEqual(['-a', 'list']);
    expect(withoutHost(['--host', 'box', 'shell', 'web', '/bin/x', '-H', 'y'])).toEqual(['shell', 'web', '/bin/x', '-H', 'y']);
  });
});
