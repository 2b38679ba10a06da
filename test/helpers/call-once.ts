/**
 * One untyped call over berth's Varlink client, for tests that look at a registry's answer: connect to
 * a socket path, call, close. Errors reject as the client raises them (VarlinkError for an error reply).
 */
import { VarlinkClient } from '../../src/varlink/client.js';

export async function varlinkCall(socketPath: string, method: string, parameters: object, timeoutMs = 5000): Promise<Record<string, unknown>> {
  const client = await VarlinkClient.connect({ kind: 'unix', path: socketPath }, { timeout: timeoutMs });
  try {
    return await client.callRaw(method, parameters);
  } finally {
    client.close();
  }
}
