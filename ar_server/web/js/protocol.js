// Protocol v1 messages as the page sends and reads them (docs/PROTOCOL.md; the server's code is
// ar_server/protocol/messages.py and codec.py). Every message is one binary WebSocket message holding one
// msgpack map with `t` (type) and `v` (version).

import { decode, encode, Float } from "./msgpack.js";

export const VERSION = 1;
export const STREAM_PATH = "/v1/stream";
export const CLIENT_KIND = "web";

export class ProtocolError extends Error {}

/** The `hello` that opens (or, with `resume`, reopens) a session. */
export function hello({ token, locale, camera, resume, consentStoreFrames }) {
  return encode({
    t: "hello", v: VERSION, token, client: CLIENT_KIND, locale,
    camera: camera && {
      fx: new Float(camera.fx), fy: new Float(camera.fy), cx: new Float(camera.cx), cy: new Float(camera.cy),
      width: camera.width, height: camera.height,
    },
    resume: resume || undefined,
    consent_store_frames: Boolean(consentStoreFrames),
  });
}

/** A camera frame: `seq` increases on a connection, `ts` is the capture time in seconds (echoed in `obs`). */
export function frame({ seq, ts, jpeg, width, height }) {
  return encode({ t: "frame", v: VERSION, seq, ts: new Float(ts), jpeg, width, height });
}

/** A user action on step `step`: done, back, help, or choose with `choice`. */
export function event({ kind, step, choice }) {
  return encode({ t: "event", v: VERSION, kind, step: step || undefined, choice: kind === "choose" ? choice : undefined });
}

export function bye(reason) {
  return encode({ t: "bye", v: VERSION, reason });
}

/** A server message as a plain object with a string `t`; ProtocolError if it is not a v1 message map. */
export function readServer(data) {
  let message;
  try {
    message = decode(data);
  } catch (err) {
    throw new ProtocolError(`not a msgpack message: ${err.message}`);
  }
  if (message === null || typeof message !== "object" || Array.isArray(message) || message instanceof Uint8Array) {
    throw new ProtocolError("expected a map");
  }
  if (message.v !== VERSION) throw new ProtocolError(`expected protocol version ${VERSION}, got ${message.v}`);
  if (typeof message.t !== "string") throw new ProtocolError("expected a str `t`");
  return message;
}

/** The WebSocket URL of the stream on the page's own origin. */
export function streamUrl(location) {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${STREAM_PATH}`;
}
