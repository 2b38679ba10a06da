/**
 * io.systemd.UserDatabase answers, byte for byte, as the real systemd-machined 257 gave them.
 *
 * Recorded on Debian 12 (kernel user namespaces, 257 from the reference tools) with these machines
 * registered: each was a `sleep` in a fresh user namespace whose uid_map/gid_map were written from
 * the host as below (ud-nons ran in the host's own namespace). Each vector is
 * [method, parameters as sent, reply as received, 'idl' when 257 decides it in its IDL validator
 * rather than in the handler]. IDL-decided vectors still pass here because UserDb repeats the type
 * checks; over the wire berth's Varlink layer answers them first.
 */
import { describe, expect, it } from 'vitest';
import { UserDb, parseIdMap, type UserDbResult } from '../../../src/server/userdb/index.js';

const MACHINES: { name: string; class: string; uid: string; gid: string }[] = [
  { name: 'ud-x', class: 'container', uid: '0 1879048192 65536', gid: '0 1879048192 65536' },
  { name: 'ud-aaaaaaaaaaaaaaaaaaaaaaa', class: 'container', uid: '0 1879179264 65536', gid: '0 1879179264 65536' },
  { name: 'ud-a.b', class: 'container', uid: '0 1879244800 65536', gid: '0 1879244800 65536' },
  { name: 'ud-nons', class: 'container', uid: '0 0 4294967295', gid: '0 0 4294967295' },
  {
    name: 'ud-multi',
    class: 'container',
    uid: '0 1879310336 1000\n1000 0 1\n1001 100000 10\n2000 5000 10\n4294967294 1879375872 1',
    gid: '0 1879441408 500\n500 200000 5',
  },
  { name: 'ud-vm', class: 'vm', uid: '0 1879506944 65536', gid: '0 1879506944 65536' },
  { name: 'ud-id', class: 'container', uid: '0 1879638016 65536\n70000 70000 10', gid: '0 1879638016 65536\n70000 70000 10' },
  { name: 'ud-Up', class: 'container', uid: '0 1879703552 65536', gid: '0 1879703552 65536' },
];

const A300 = 'a'.repeat(300);
const A31 = 'a'.repeat(31);

type Vector = [method: 'GetUserRecord' | 'GetGroupRecord' | 'GetMemberships', params: string, reply: string, decidedBy?: 'idl'];

// prettier-ignore
const VECTORS: Vector[] = [
  // records
  ['GetUserRecord', '{"uid":1879048192,"service":"io.systemd.Machine"}', '{"parameters":{"record":{"userName":"vu-ud-x-0","uid":1879048192,"gid":65534,"realName":"UID 0 of Container ud-x","homeDirectory":"/","shell":"/usr/sbin/nologin","locked":true,"service":"io.systemd.Machine","disposition":"container"}}}'],
  ['GetUserRecord', '{"uid":1879048193,"service":"io.systemd.Machine"}', '{"parameters":{"record":{"userName":"vu-ud-x-1","uid":1879048193,"gid":65534,"realName":"UID 1 of Container ud-x","homeDirectory":"/","shell":"/usr/sbin/nologin","locked":true,"service":"io.systemd.Machine","disposition":"container"}}}'],
  ['GetUserRecord', '{"uid":1879113726,"service":"io.systemd.Machine"}', '{"parameters":{"record":{"userName":"vu-ud-x-65534","uid":1879113726,"gid":65534,"realName":"UID 65534 of Container ud-x","homeDirectory":"/","shell":"/usr/sbin/nologin","locked":true,"service":"io.systemd.Machine","disposition":"container"}}}'],
  ['GetUserRecord', '{"uid":1879113727,"service":"io.systemd.Machine"}', '{"error":"io.systemd.System","parameters":{"errno":22}}'],
  ['GetUserRecord', '{"uid":1879113728,"service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"userName":"vu-ud-x-0","service":"io.systemd.Machine"}', '{"parameters":{"record":{"userName":"vu-ud-x-0","uid":1879048192,"gid":65534,"realName":"UID 0 of Container ud-x","homeDirectory":"/","shell":"/usr/sbin/nologin","locked":true,"service":"io.systemd.Machine","disposition":"container"}}}'],
  ['GetUserRecord', '{"userName":"vu-ud-x-65534","service":"io.systemd.Machine"}', '{"parameters":{"record":{"userName":"vu-ud-x-65534","uid":1879113726,"gid":65534,"realName":"UID 65534 of Container ud-x","homeDirectory":"/","shell":"/usr/sbin/nologin","locked":true,"service":"io.systemd.Machine","disposition":"container"}}}'],
  ['GetUserRecord', '{"uid":1879048192.0,"service":"io.systemd.Machine"}', '{"parameters":{"record":{"userName":"vu-ud-x-0","uid":1879048192,"gid":65534,"realName":"UID 0 of Container ud-x","homeDirectory":"/","shell":"/usr/sbin/nologin","locked":true,"service":"io.systemd.Machine","disposition":"container"}}}'],
  ['GetUserRecord', '{"uid":1.879048192e9,"service":"io.systemd.Machine"}', '{"parameters":{"record":{"userName":"vu-ud-x-0","uid":1879048192,"gid":65534,"realName":"UID 0 of Container ud-x","homeDirectory":"/","shell":"/usr/sbin/nologin","locked":true,"service":"io.systemd.Machine","disposition":"container"}}}'],
  ['GetUserRecord', '{"uid":-0,"service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetGroupRecord', '{"gid":1879048192,"service":"io.systemd.Machine"}', '{"parameters":{"record":{"groupName":"vg-ud-x-0","gid":1879048192,"description":"GID 0 of Container ud-x","service":"io.systemd.Machine","disposition":"container"}}}'],
  ['GetGroupRecord', '{"groupName":"vg-ud-x-0","service":"io.systemd.Machine"}', '{"parameters":{"record":{"groupName":"vg-ud-x-0","gid":1879048192,"description":"GID 0 of Container ud-x","service":"io.systemd.Machine","disposition":"container"}}}'],
  ['GetGroupRecord', '{"gid":1879113726,"service":"io.systemd.Machine"}', '{"parameters":{"record":{"groupName":"vg-ud-x-65534","gid":1879113726,"description":"GID 65534 of Container ud-x","service":"io.systemd.Machine","disposition":"container"}}}'],
  ['GetGroupRecord', '{"gid":1879113727,"service":"io.systemd.Machine"}', '{"error":"io.systemd.System","parameters":{"errno":22}}'],
  ['GetGroupRecord', '{"groupName":"vg-ud-x-65535","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetGroupRecord', '{"groupName":"vu-ud-x-0","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"userName":"vg-ud-x-0","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  // service
  ['GetUserRecord', '{"uid":1879048192}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"service"}}', 'idl'],
  ['GetUserRecord', '{"uid":1879048192,"service":"io.systemd.Multiplexer"}', '{"error":"io.systemd.UserDatabase.BadService","parameters":{}}'],
  ['GetUserRecord', '{"uid":1879048192,"service":""}', '{"error":"io.systemd.UserDatabase.BadService","parameters":{}}'],
  ['GetUserRecord', '{"uid":1879048192,"service":null}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"service"}}', 'idl'],
  ['GetUserRecord', '{"uid":1879048192,"service":5}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"service"}}', 'idl'],
  ['GetUserRecord', '{"service":"io.systemd.machine"}', '{"error":"io.systemd.UserDatabase.BadService","parameters":{}}'],
  ['GetUserRecord', '{"service":"io.systemd.Machine "}', '{"error":"io.systemd.UserDatabase.BadService","parameters":{}}'],
  ['GetUserRecord', '{"userName":"vu-ud-x-0","service":"nope"}', '{"error":"io.systemd.UserDatabase.BadService","parameters":{}}'],
  ['GetUserRecord', '{"uid":1879048192,"userName":"vu-ud-x-0","service":"nope"}', '{"error":"io.systemd.UserDatabase.BadService","parameters":{}}'],
  ['GetGroupRecord', '{"gid":1879048192,"service":"x"}', '{"error":"io.systemd.UserDatabase.BadService","parameters":{}}'],
  ['GetGroupRecord', '{"gid":1879048192}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"service"}}', 'idl'],
  // enumeration
  ['GetUserRecord', '{"service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.EnumerationNotSupported","parameters":{}}'],
  ['GetGroupRecord', '{"service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.EnumerationNotSupported","parameters":{}}'],
  ['GetUserRecord', '{"service":"io.systemd.Multiplexer"}', '{"error":"io.systemd.UserDatabase.BadService","parameters":{}}'],
  // bad uid values
  ['GetUserRecord', '{"uid":-1,"service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"uid"}}'],
  ['GetUserRecord', '{"uid":-5,"service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"uid"}}'],
  ['GetUserRecord', '{"uid":9007199254740992,"service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"uid"}}'],
  ['GetUserRecord', '{"uid":4294967295,"service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"uid"}}'],
  ['GetUserRecord', '{"uid":4294967295.0,"service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"uid"}}'],
  ['GetUserRecord', '{"uid":4294967294,"service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"uid":4294967296,"service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"uid"}}'],
  ['GetUserRecord', '{"uid":1.5,"service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"uid"}}', 'idl'],
  ['GetUserRecord', '{"uid":1.8790481925e9,"service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"uid"}}', 'idl'],
  ['GetUserRecord', '{"uid":"1879048192","service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"uid"}}'],
  ['GetUserRecord', '{"uid":"abc","service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"uid"}}'],
  ['GetUserRecord', '{"uid":"-1","service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"uid"}}'],
  ['GetUserRecord', '{"uid":"","service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"uid"}}'],
  ['GetUserRecord', '{"uid":65535,"service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"uid"}}'],
  ['GetUserRecord', '{"uid":65535,"service":"nope"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"uid"}}'],
  ['GetUserRecord', '{"uid":-1,"service":"nope"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"uid"}}'],
  ['GetUserRecord', '{"uid":65536,"service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"uid":65534,"service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"uid":0,"service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"uid":null,"service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"uid"}}'],
  ['GetUserRecord', '{"uid":true,"service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"uid"}}', 'idl'],
  ['GetUserRecord', '{"uid":[],"service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"uid"}}', 'idl'],
  ['GetUserRecord', '{"uid":{},"service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"uid"}}', 'idl'],
  ['GetUserRecord', '{"uid":1e30,"service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"uid"}}', 'idl'],
  ['GetUserRecord', '{"uid":18446744073709551616,"service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"uid"}}', 'idl'],
  ['GetGroupRecord', '{"gid":65535,"service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"gid"}}'],
  ['GetGroupRecord', '{"gid":-1,"service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"gid"}}'],
  ['GetGroupRecord', '{"gid":"1879048192","service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"gid"}}'],
  // unknown and filter keys
  ['GetUserRecord', '{"uid":1879048192,"service":"io.systemd.Machine","foo":1}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"foo"}}', 'idl'],
  // 257 refused the filter fields of systemd 258+ in its IDL validator (InvalidParameter naming the
  // field, e.g. fuzzyNames, uidMin, gidMin); berth answers them as 262 clients send them, so those
  // calls are in filters.test.ts ('what 257 refused') instead.
  ['GetUserRecord', '{"uid":1879048192,"service":"io.systemd.Machine","incomplete":true}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"incomplete"}}', 'idl'],
  ['GetGroupRecord', '{"gid":1879048192,"uid":1,"service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"uid"}}', 'idl'],
  ['GetUserRecord', '{"foo":1,"uid":-1,"service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"foo"}}', 'idl'],
  ['GetUserRecord', '{"uid":-1,"foo":1,"service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"foo"}}', 'idl'],
  // key order decides which bad key is named
  ['GetUserRecord', '{"userName":"","uid":-1,"service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"userName"}}'],
  ['GetUserRecord', '{"uid":-1,"userName":"","service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"uid"}}'],
  // uid and name together
  ['GetUserRecord', '{"uid":1879048192,"userName":"vu-ud-x-0","service":"io.systemd.Machine"}', '{"parameters":{"record":{"userName":"vu-ud-x-0","uid":1879048192,"gid":65534,"realName":"UID 0 of Container ud-x","homeDirectory":"/","shell":"/usr/sbin/nologin","locked":true,"service":"io.systemd.Machine","disposition":"container"}}}'],
  ['GetUserRecord', '{"uid":1879048192,"userName":"vu-ud-x-1","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.ConflictingRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"uid":1879048192,"userName":"root","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.ConflictingRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"uid":1879048192,"userName":"vu-nope-0","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.ConflictingRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"uid":5,"userName":"vu-ud-x-0","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"uid":1879113727,"userName":"x","service":"io.systemd.Machine"}', '{"error":"io.systemd.System","parameters":{"errno":22}}'],
  ['GetUserRecord', '{"uid":1879048193,"userName":"","service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"userName"}}'],
  ['GetGroupRecord', '{"gid":1879048192,"groupName":"vg-ud-x-1","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.ConflictingRecordFound","parameters":{}}'],
  ['GetGroupRecord', '{"gid":1879048192,"groupName":"vg-ud-x-0","service":"io.systemd.Machine"}', '{"parameters":{"record":{"groupName":"vg-ud-x-0","gid":1879048192,"description":"GID 0 of Container ud-x","service":"io.systemd.Machine","disposition":"container"}}}'],
  ['GetGroupRecord', '{"gid":65536,"groupName":"vg-ud-x-0","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  // name grammar
  ['GetUserRecord', '{"userName":"vu--0","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"userName":"vu-ud-x-00","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"userName":"vu-ud-x-01","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"userName":"vu-ud-x-+1","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"userName":"vu-ud-x--1","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"userName":"vu-ud-x-65535","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"userName":"vu-ud-x-65536","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"userName":"vu-ud-x-4294967295","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"userName":"vu-ud-x-","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"userName":"vu-ud-x- 1","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"userName":"vu-ud-x-1 ","service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"userName"}}'],
  ['GetUserRecord', '{"userName":" vu-ud-x-0","service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"userName"}}'],
  ['GetUserRecord', '{"userName":"vu-ud-x-0x1","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"userName":"vu-ud-x-1e1","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"userName":"VU-ud-x-0","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"userName":"vu-UD-X-0","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"userName":"vu-x-0","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"userName":"vu-","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"userName":"vu-ud-x","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"userName":"vu-.host-0","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"userName":"vu-ud x-0","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"userName":"vu-ud:x-0","service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"userName"}}'],
  ['GetUserRecord', '{"userName":"vu-ud/x-0","service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"userName"}}'],
  ['GetUserRecord', '{"userName":"vu-üd-0","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"userName":"' + A300 + '","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"userName":"vu-ud-x-' + A300 + '","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"userName":"' + A31 + '","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"userName":"","service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"userName"}}'],
  ['GetUserRecord', '{"userName":null,"service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"userName"}}'],
  ['GetUserRecord', '{"userName":5,"service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"userName"}}', 'idl'],
  ['GetUserRecord', '{"userName":[],"service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"userName"}}', 'idl'],
  ['GetUserRecord', '{"userName":"ü","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"userName":"a\\ud83d\\ude00b","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"userName":"a\\u00a0b","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"userName":"\\u00a0a","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"userName":"a\\u0080b","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"userName":"a\\u2028b","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"userName":"-vu","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"userName":"-","service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"userName"}}'],
  ['GetUserRecord', '{"userName":"-0","service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"userName"}}'],
  ['GetUserRecord', '{"userName":"--1","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"userName":"-1a","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"userName":"1a","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"userName":"1-1","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"userName":"123","service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"userName"}}'],
  ['GetUserRecord', '{"userName":"0","service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"userName"}}'],
  ['GetUserRecord', '{"userName":"00","service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"userName"}}'],
  ['GetUserRecord', '{"userName":"0644","service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"userName"}}'],
  ['GetUserRecord', '{"userName":"65535","service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"userName"}}'],
  ['GetUserRecord', '{"userName":"4294967296","service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"userName"}}'],
  ['GetUserRecord', '{"userName":"-1","service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"userName"}}'],
  ['GetUserRecord', '{"userName":"-12345678901234567890","service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"userName"}}'],
  ['GetUserRecord', '{"userName":"18446744073709551616","service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"userName"}}'],
  ['GetUserRecord', '{"userName":"+1","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"userName":"0x10","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"userName":"1.5","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"userName":"1e3","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"userName":"٣","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"userName":" ","service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"userName"}}'],
  ['GetUserRecord', '{"userName":" 1","service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"userName"}}'],
  ['GetUserRecord', '{"userName":"1 ","service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"userName"}}'],
  ['GetUserRecord', '{"userName":"1\\u00a0","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"userName":"a b","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"userName":"a\\tb","service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"userName"}}'],
  ['GetUserRecord', '{"userName":"a\\nb","service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"userName"}}'],
  ['GetUserRecord', '{"userName":"a\\rb","service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"userName"}}'],
  ['GetUserRecord', '{"userName":"a\\u0001b","service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"userName"}}'],
  ['GetUserRecord', '{"userName":"a\\u000bb","service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"userName"}}'],
  ['GetUserRecord', '{"userName":"a\\u007fb","service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"userName"}}'],
  ['GetUserRecord', '{"userName":"a:","service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"userName"}}'],
  ['GetUserRecord', '{"userName":"a\\\\b","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"userName":"a~b","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"userName":"a,b","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"userName":".","service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"userName"}}'],
  ['GetUserRecord', '{"userName":"..","service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"userName"}}'],
  ['GetUserRecord', '{"userName":"...","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"userName":".a","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"userName":"a.","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"userName":"root","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetGroupRecord', '{"groupName":"","service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"groupName"}}'],
  ['GetGroupRecord', '{"groupName":"123","service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"groupName"}}'],
  // name too long: the 26-character machine
  ['GetUserRecord', '{"uid":1879179264,"service":"io.systemd.Machine"}', '{"parameters":{"record":{"userName":"vu-ud-aaaaaaaaaaaaaaaaaaaaaaa-0","uid":1879179264,"gid":65534,"realName":"UID 0 of Container ud-aaaaaaaaaaaaaaaaaaaaaaa","homeDirectory":"/","shell":"/usr/sbin/nologin","locked":true,"service":"io.systemd.Machine","disposition":"container"}}}'],
  ['GetUserRecord', '{"uid":1879179273,"service":"io.systemd.Machine"}', '{"parameters":{"record":{"userName":"vu-ud-aaaaaaaaaaaaaaaaaaaaaaa-9","uid":1879179273,"gid":65534,"realName":"UID 9 of Container ud-aaaaaaaaaaaaaaaaaaaaaaa","homeDirectory":"/","shell":"/usr/sbin/nologin","locked":true,"service":"io.systemd.Machine","disposition":"container"}}}'],
  ['GetUserRecord', '{"uid":1879179274,"service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"userName":"vu-ud-aaaaaaaaaaaaaaaaaaaaaaa-9","service":"io.systemd.Machine"}', '{"parameters":{"record":{"userName":"vu-ud-aaaaaaaaaaaaaaaaaaaaaaa-9","uid":1879179273,"gid":65534,"realName":"UID 9 of Container ud-aaaaaaaaaaaaaaaaaaaaaaa","homeDirectory":"/","shell":"/usr/sbin/nologin","locked":true,"service":"io.systemd.Machine","disposition":"container"}}}'],
  ['GetUserRecord', '{"userName":"vu-ud-aaaaaaaaaaaaaaaaaaaaaaa-10","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetGroupRecord', '{"gid":1879179273,"service":"io.systemd.Machine"}', '{"parameters":{"record":{"groupName":"vg-ud-aaaaaaaaaaaaaaaaaaaaaaa-9","gid":1879179273,"description":"GID 9 of Container ud-aaaaaaaaaaaaaaaaaaaaaaa","service":"io.systemd.Machine","disposition":"container"}}}'],
  ['GetGroupRecord', '{"gid":1879179274,"service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  // machine name with a dot
  ['GetUserRecord', '{"uid":1879244800,"service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"userName":"vu-ud-a.b-0","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetGroupRecord', '{"gid":1879244800,"service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  // container without its own user namespace
  ['GetUserRecord', '{"userName":"vu-ud-nons-0","service":"io.systemd.Machine"}', '{"parameters":{"record":{"userName":"vu-ud-nons-0","uid":0,"gid":65534,"realName":"UID 0 of Container ud-nons","homeDirectory":"/","shell":"/usr/sbin/nologin","locked":true,"service":"io.systemd.Machine","disposition":"container"}}}'],
  ['GetUserRecord', '{"userName":"vu-ud-nons-1000","service":"io.systemd.Machine"}', '{"parameters":{"record":{"userName":"vu-ud-nons-1000","uid":1000,"gid":65534,"realName":"UID 1000 of Container ud-nons","homeDirectory":"/","shell":"/usr/sbin/nologin","locked":true,"service":"io.systemd.Machine","disposition":"container"}}}'],
  ['GetUserRecord', '{"userName":"vu-ud-nons-70000","service":"io.systemd.Machine"}', '{"parameters":{"record":{"userName":"vu-ud-nons-70000","uid":70000,"gid":65534,"realName":"UID 70000 of Container ud-nons","homeDirectory":"/","shell":"/usr/sbin/nologin","locked":true,"service":"io.systemd.Machine","disposition":"container"}}}'],
  ['GetUserRecord', '{"userName":"vu-ud-nons-4294967294","service":"io.systemd.Machine"}', '{"parameters":{"record":{"userName":"vu-ud-nons-4294967294","uid":4294967294,"gid":65534,"realName":"UID 4294967294 of Container ud-nons","homeDirectory":"/","shell":"/usr/sbin/nologin","locked":true,"service":"io.systemd.Machine","disposition":"container"}}}'],
  ['GetUserRecord', '{"userName":"vu-ud-nons-65535","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetGroupRecord', '{"groupName":"vg-ud-nons-0","service":"io.systemd.Machine"}', '{"parameters":{"record":{"groupName":"vg-ud-nons-0","gid":0,"description":"GID 0 of Container ud-nons","service":"io.systemd.Machine","disposition":"container"}}}'],
  ['GetUserRecord', '{"uid":100020,"service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  // several map lines
  ['GetUserRecord', '{"uid":1879310336,"service":"io.systemd.Machine"}', '{"parameters":{"record":{"userName":"vu-ud-multi-0","uid":1879310336,"gid":65534,"realName":"UID 0 of Container ud-multi","homeDirectory":"/","shell":"/usr/sbin/nologin","locked":true,"service":"io.systemd.Machine","disposition":"container"}}}'],
  ['GetUserRecord', '{"uid":1879311335,"service":"io.systemd.Machine"}', '{"parameters":{"record":{"userName":"vu-ud-multi-999","uid":1879311335,"gid":65534,"realName":"UID 999 of Container ud-multi","homeDirectory":"/","shell":"/usr/sbin/nologin","locked":true,"service":"io.systemd.Machine","disposition":"container"}}}'],
  ['GetUserRecord', '{"uid":1879311336,"service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"uid":100000,"service":"io.systemd.Machine"}', '{"parameters":{"record":{"userName":"vu-ud-multi-1001","uid":100000,"gid":65534,"realName":"UID 1001 of Container ud-multi","homeDirectory":"/","shell":"/usr/sbin/nologin","locked":true,"service":"io.systemd.Machine","disposition":"container"}}}'],
  ['GetUserRecord', '{"uid":100009,"service":"io.systemd.Machine"}', '{"parameters":{"record":{"userName":"vu-ud-multi-1010","uid":100009,"gid":65534,"realName":"UID 1010 of Container ud-multi","homeDirectory":"/","shell":"/usr/sbin/nologin","locked":true,"service":"io.systemd.Machine","disposition":"container"}}}'],
  ['GetUserRecord', '{"uid":100010,"service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"uid":5000,"service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"uid":1879375872,"service":"io.systemd.Machine"}', '{"parameters":{"record":{"userName":"vu-ud-multi-4294967294","uid":1879375872,"gid":65534,"realName":"UID 4294967294 of Container ud-multi","homeDirectory":"/","shell":"/usr/sbin/nologin","locked":true,"service":"io.systemd.Machine","disposition":"container"}}}'],
  ['GetUserRecord', '{"userName":"vu-ud-multi-1000","service":"io.systemd.Machine"}', '{"parameters":{"record":{"userName":"vu-ud-multi-1000","uid":0,"gid":65534,"realName":"UID 1000 of Container ud-multi","homeDirectory":"/","shell":"/usr/sbin/nologin","locked":true,"service":"io.systemd.Machine","disposition":"container"}}}'],
  ['GetUserRecord', '{"userName":"vu-ud-multi-1001","service":"io.systemd.Machine"}', '{"parameters":{"record":{"userName":"vu-ud-multi-1001","uid":100000,"gid":65534,"realName":"UID 1001 of Container ud-multi","homeDirectory":"/","shell":"/usr/sbin/nologin","locked":true,"service":"io.systemd.Machine","disposition":"container"}}}'],
  ['GetUserRecord', '{"userName":"vu-ud-multi-2000","service":"io.systemd.Machine"}', '{"parameters":{"record":{"userName":"vu-ud-multi-2000","uid":5000,"gid":65534,"realName":"UID 2000 of Container ud-multi","homeDirectory":"/","shell":"/usr/sbin/nologin","locked":true,"service":"io.systemd.Machine","disposition":"container"}}}'],
  ['GetUserRecord', '{"userName":"vu-ud-multi-2010","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"userName":"vu-ud-multi-1500","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"userName":"vu-ud-multi-4294967294","service":"io.systemd.Machine"}', '{"parameters":{"record":{"userName":"vu-ud-multi-4294967294","uid":1879375872,"gid":65534,"realName":"UID 4294967294 of Container ud-multi","homeDirectory":"/","shell":"/usr/sbin/nologin","locked":true,"service":"io.systemd.Machine","disposition":"container"}}}'],
  ['GetUserRecord', '{"userName":"vu-ud-multi-999","service":"io.systemd.Machine"}', '{"parameters":{"record":{"userName":"vu-ud-multi-999","uid":1879311335,"gid":65534,"realName":"UID 999 of Container ud-multi","homeDirectory":"/","shell":"/usr/sbin/nologin","locked":true,"service":"io.systemd.Machine","disposition":"container"}}}'],
  ['GetGroupRecord', '{"gid":1879441408,"service":"io.systemd.Machine"}', '{"parameters":{"record":{"groupName":"vg-ud-multi-0","gid":1879441408,"description":"GID 0 of Container ud-multi","service":"io.systemd.Machine","disposition":"container"}}}'],
  ['GetGroupRecord', '{"gid":1879310336,"service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetGroupRecord', '{"gid":200004,"service":"io.systemd.Machine"}', '{"parameters":{"record":{"groupName":"vg-ud-multi-504","gid":200004,"description":"GID 504 of Container ud-multi","service":"io.systemd.Machine","disposition":"container"}}}'],
  ['GetGroupRecord', '{"groupName":"vg-ud-multi-504","service":"io.systemd.Machine"}', '{"parameters":{"record":{"groupName":"vg-ud-multi-504","gid":200004,"description":"GID 504 of Container ud-multi","service":"io.systemd.Machine","disposition":"container"}}}'],
  ['GetGroupRecord', '{"groupName":"vg-ud-multi-505","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  // identity line with a non-zero host side
  ['GetUserRecord', '{"uid":70000,"service":"io.systemd.Machine"}', '{"parameters":{"record":{"userName":"vu-ud-id-70000","uid":70000,"gid":65534,"realName":"UID 70000 of Container ud-id","homeDirectory":"/","shell":"/usr/sbin/nologin","locked":true,"service":"io.systemd.Machine","disposition":"container"}}}'],
  ['GetUserRecord', '{"userName":"vu-ud-id-70000","service":"io.systemd.Machine"}', '{"parameters":{"record":{"userName":"vu-ud-id-70000","uid":70000,"gid":65534,"realName":"UID 70000 of Container ud-id","homeDirectory":"/","shell":"/usr/sbin/nologin","locked":true,"service":"io.systemd.Machine","disposition":"container"}}}'],
  ['GetGroupRecord', '{"gid":1879703551,"service":"io.systemd.Machine"}', '{"error":"io.systemd.System","parameters":{"errno":22}}'],
  // VM class
  ['GetUserRecord', '{"uid":1879506944,"service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetUserRecord', '{"userName":"vu-ud-vm-0","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  // case-sensitive machine names
  ['GetUserRecord', '{"uid":1879703552,"service":"io.systemd.Machine"}', '{"parameters":{"record":{"userName":"vu-ud-Up-0","uid":1879703552,"gid":65534,"realName":"UID 0 of Container ud-Up","homeDirectory":"/","shell":"/usr/sbin/nologin","locked":true,"service":"io.systemd.Machine","disposition":"container"}}}'],
  ['GetUserRecord', '{"userName":"vu-ud-Up-0","service":"io.systemd.Machine"}', '{"parameters":{"record":{"userName":"vu-ud-Up-0","uid":1879703552,"gid":65534,"realName":"UID 0 of Container ud-Up","homeDirectory":"/","shell":"/usr/sbin/nologin","locked":true,"service":"io.systemd.Machine","disposition":"container"}}}'],
  ['GetUserRecord', '{"userName":"vu-ud-up-0","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  // memberships
  ['GetMemberships', '{"service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetMemberships', '{"userName":"vu-ud-x-0","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetMemberships', '{"groupName":"vg-ud-x-0","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetMemberships', '{"userName":"vu-ud-x-0","groupName":"vg-ud-x-0","service":"io.systemd.Machine"}', '{"error":"io.systemd.UserDatabase.NoRecordFound","parameters":{}}'],
  ['GetMemberships', '{"service":"nope"}', '{"error":"io.systemd.UserDatabase.BadService","parameters":{}}'],
  ['GetMemberships', '{}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"service"}}', 'idl'],
  ['GetMemberships', '{"userName":"","service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"userName"}}'],
  ['GetMemberships', '{"userName":"","service":"nope"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"userName"}}'],
  ['GetMemberships', '{"userName":5,"service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"userName"}}', 'idl'],
  ['GetMemberships', '{"uid":5,"service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"uid"}}', 'idl'],
  ['GetMemberships', '{"userName":null,"service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"userName"}}'],
  ['GetMemberships', '{"groupName":null,"service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"groupName"}}'],
  ['GetMemberships', '{"userName":"a b ","service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"userName"}}'],
  ['GetMemberships', '{"userName":"123","service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"userName"}}'],
  ['GetMemberships', '{"groupName":"a:b","service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"groupName"}}'],
  ['GetMemberships', '{"service":"io.systemd.Machine","foo":1}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"foo"}}', 'idl'],
  // IDL validation runs before the handler: which key gets named
  ['GetUserRecord', '{"uid":"abc","service":5}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"service"}}', 'idl'],
  ['GetUserRecord', '{"uid":"123","service":5}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"service"}}', 'idl'],
  ['GetUserRecord', '{"uid":-1,"service":5}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"service"}}', 'idl'],
  ['GetUserRecord', '{"uid":1.5,"service":5}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"uid"}}', 'idl'],
  ['GetUserRecord', '{"uid":9007199254740992,"service":5}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"service"}}', 'idl'],
  ['GetUserRecord', '{"uid":1e30,"service":5}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"uid"}}', 'idl'],
  ['GetUserRecord', '{"uid":65535,"service":5}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"service"}}', 'idl'],
  ['GetUserRecord', '{"uid":null,"service":5}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"service"}}', 'idl'],
  ['GetUserRecord', '{"uid":true,"service":5}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"uid"}}', 'idl'],
  ['GetUserRecord', '{"userName":5,"service":5}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"userName"}}', 'idl'],
  ['GetUserRecord', '{"userName":"","service":5}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"service"}}', 'idl'],
  ['GetUserRecord', '{"foo":1,"service":5}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"service"}}', 'idl'],
  ['GetUserRecord', '{"service":5,"foo":1}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"service"}}', 'idl'],
  ['GetUserRecord', '{"fuzzyNames":["a"],"service":5}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"service"}}', 'idl'],
  ['GetUserRecord', '{"userName":"","uid":true,"service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"uid"}}', 'idl'],
  ['GetGroupRecord', '{"gid":"x","groupName":"","service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"gid"}}'],
  ['GetGroupRecord', '{"groupName":"","gid":"x","service":"io.systemd.Machine"}', '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"groupName"}}'],
];

/** A result as sd-varlink 257 puts it on the wire (empty error parameters are sent as `{}`). */
export function toWire(r: UserDbResult<object>): string {
  if ('records' in r) return JSON.stringify({ parameters: { record: r.records[0] } });
  if ('invalidParameter' in r) return JSON.stringify({ error: 'org.varlink.service.InvalidParameter', parameters: { parameter: r.invalidParameter } });
  if (r.error === 'io.systemd.System') return JSON.stringify({ error: r.error, parameters: { errno: (r as { errno: number }).errno } });
  return JSON.stringify({ error: r.error, parameters: {} });
}

function fixture(): UserDb {
  const db = new UserDb({ service: 'io.systemd.Machine' });
  for (const m of MACHINES) db.setMachine({ name: m.name, class: m.class, uidMap: parseIdMap(m.uid), gidMap: parseIdMap(m.gid), registeredBy: 0 });
  return db;
}

function call(db: UserDb, method: Vector[0], params: unknown): UserDbResult<object> {
  const p = params as Record<string, unknown>;
  if (method === 'GetUserRecord') return db.getUserRecord(p);
  if (method === 'GetGroupRecord') return db.getGroupRecord(p);
  return db.getMemberships(p);
}

describe('UserDb answers as systemd-machined 257 did', () => {
  const db = fixture();
  it('has a vector for every kind of answer', () => {
    const replies = VECTORS.map((v) => JSON.parse(v[2]) as { error?: string });
    const kinds = new Set(replies.map((r) => r.error ?? 'record'));
    expect([...kinds].sort()).toEqual([
      'io.systemd.System',
      'io.systemd.UserDatabase.BadService',
      'io.systemd.UserDatabase.ConflictingRecordFound',
      'io.systemd.UserDatabase.EnumerationNotSupported',
      'io.systemd.UserDatabase.NoRecordFound',
      'org.varlink.service.InvalidParameter',
      'record',
    ]);
  });
  it.each(VECTORS)('%s %s', (method, params, reply) => {
    expect(toWire(call(db, method, JSON.parse(params)))).toBe(reply);
  });
});
