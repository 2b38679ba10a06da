// The event loop's side of the parse worker: what happens when there is no worker, or it dies.
// (The worker's answers themselves are compared with the event loop's in
// test/integration/varlink/offload.test.ts, against two berthd processes.)
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ParseOffload } from '../../../src/varlink/offload.js';
import { examine, methodTable } from '../../../src/varlink/parse-worker.js';
import { tempDir } from '../../helpers/tmp.js';
import pino from 'pino';

const dir = tempDir('offload-unit');
afterAll(() => dir.remove());
const logger = pino({ level: 'silent' });
const bytes = Buffer.from('{"method":"org.varlink.service.GetInfo"}');

describe('ParseOffload', () => {
  it('hands the message back to the event loop when the worker cannot start', async () => {
    const o = new ParseOffload(join(dir.path, 'missing.mjs'), logger);
    expect(await o.parse(bytes)).toEqual({ local: true });
    o.close();
  });

  it('hands outstanding messages back when the worker dies, and starts a new one for the next', async () => {
    const dying = join(dir.path, 'dying.mjs');
    writeFileSync(dying, "import { parentPort } from 'node:worker_threads'; parentPort.on('message', () => process.exit(3));\n");
    const o = new ParseOffload(dying, logger);
    expect(await Promise.all([o.parse(bytes), o.parse(bytes)])).toEqual([{ local: true }, { local: true }]);
    expect(await o.parse(bytes)).toEqual({ local: true });
    o.close();
  });

  it('turns worker answers into calls: refused parameter, checked text, or a drop', async () => {
    const answering = join(dir.path, 'answering.mjs');
    writeFileSync(
      answering,
      "import { parentPort } from 'node:worker_threads';\n" +
        "const header = { method: 'a.b.C', oneway: false, more: true, upgrade: false };\n" +
        "const answers = [{ header, invalid: 'x' }, { header, text: '{}', checked: true }, { drop: 'bad' }];\n" +
        "let n = 0; parentPort.on('message', ({ id }) => parentPort.postMessage({ id, ...answers[n++] }));\n",
    );
    const o = new ParseOffload(answering, logger);
    const [a, b, c] = await Promise.all([o.parse(bytes), o.parse(bytes), o.parse(bytes)]);
    expect(a).toEqual({ call: { method: 'a.b.C', oneway: false, more: true, upgrade: false, parameters: {}, offloaded: { invalid: 'x' } } });
    expect(b).toMatchObject({ call: { offloaded: { text: '{}', checked: true } } });
    expect(c).toEqual({ drop: 'bad' });
    o.close();
  });
});

describe('examine (what the worker does with one message)', () => {
  const methods = methodTable([]);
  it('checks UTF-8, the JSON rules, the header and the parameters', () => {
    expect(examine(Buffer.from([0x7b, 0xc3, 0x28, 0x7d]), methods)).toEqual({ drop: 'message is not valid UTF-8' });
    expect(examine(Buffer.from('{"method":'), methods)).toEqual({ drop: 'invalid JSON' });
    expect(examine(Buffer.from('{"method":"org.varlink.service.GetInterfaceDescription","parameters":{"interface":5}}'), methods)).toMatchObject({ invalid: 'interface' });
    const ok = '{"method":"org.varlink.service.GetInterfaceDescription","parameters":{"interface":"a.b"}}';
    expect(examine(Buffer.from(ok), methods)).toMatchObject({ text: ok, checked: true });
    // A method the worker does not know, and a doubled key, are left to the event loop to judge.
    expect(examine(Buffer.from('{"method":"x.y.Z","parameters":{"a":1}}'), methods)).toMatchObject({ checked: false });
    expect(examine(Buffer.from('{"method":"io.systemd.service.Ping","parameters":{"a":1,"a":1}}'), methods)).toMatchObject({
      header: { duplicate: 'a' },
      checked: false,
    });
  });
});
