/**
 * Sending a stream of replies (a handler's `Replies`) on one connection: every reply but the last
 * with `continues`, waiting for the socket to drain when the peer reads slowly, so an unread
 * stream cannot grow memory without bound.
 */
import { encodeReply } from './wire.js';
import type { Replies } from './call.js';
import type { IncomingCall } from './call-parser.js';
import type { ReplyWriter } from './reply-writer.js';

/**
 * Sends a stream, holding each reply back until the next one (or the end) is known, so the last
 * reply goes out without `continues`. A live stream (a subscription) goes out as it is produced.
 */
export async function sendStream(w: ReplyWriter, call: IncomingCall, replies: Replies<unknown>): Promise<void> {
  if (replies.live && call.more) return sendLive(w, call, replies);
  let held: unknown;
  let have = false;
  try {
    for await (const item of replies.source as AsyncIterable<unknown>) {
      if (w.closed) return;
      if (!call.more) {
        // Without `more` only one reply may be sent.
        held = item;
        have = true;
        break;
      }
      if (have && !call.oneway) {
        w.push(encodeReply(held as object, true));
        if (w.pending >= 64 || w.mustWait) {
          w.flush();
          if (w.mustWait) await w.drained();
        }
      }
      held = item;
      have = true;
    }
  } catch (err) {
    // Replies produced before the failure still go out (with continues), then the error.
    if (have && call.more && !call.oneway) w.push(encodeReply(held as object, true));
    w.fail(call, err);
    return;
  }
  if (call.oneway) return;
  if (have) w.push(encodeReply(held as object, false));
  else if (replies.empty) w.fail(call, replies.empty());
  else w.push(encodeReply({}, false));
}

/** Sends each reply of a subscription at once; closes the connection when it ends. */
async function sendLive(w: ReplyWriter, call: IncomingCall, replies: Replies<unknown>): Promise<void> {
  try {
    for await (const item of replies.source as AsyncIterable<unknown>) {
      if (w.closed) return;
      if (call.oneway) continue;
      w.push(encodeReply(item as object, true));
      w.flush();
      if (w.mustWait) await w.drained();
    }
  } catch (err) {
    w.fail(call, err);
    w.flush();
  }
  w.close();
}
