// The `/v1/stream` connection: hello and resume, frames at the rate the server keeps up with, user events,
// and reconnecting after a drop.
//
// Rules:
// 1. At most MAX_IN_FLIGHT frames are unanswered at once, and a frame is grabbed only when it can be sent:
//    the newest picture always wins and nothing stale waits in a queue. A frame is answered by the `obs` of
//    it or of any later frame (the server silently drops frames it cannot take, and always works on the
//    newest), by an `error` naming its `seq`, or counts as lost after IN_FLIGHT_TIMEOUT_S.
// 2. Frames never go faster than `welcome.limits.max_fps`, never larger than the limits, and not while the
//    socket still holds an unsent frame.
// 3. The resume token of each `welcome` replaces the previous one in the tab's memory; a dropped connection
//    or a reload says hello again with it, after 1, 2, 4, 8, then every 10 s. A fatal error that a retry
//    cannot fix (a bad link, another window took the session) stops for good, as does `end`.
// 4. Messages from a socket that is no longer the current one are ignored.

import { bye, event, frame, hello, readServer } from "./protocol.js";

export const MAX_IN_FLIGHT = 2;
export const IN_FLIGHT_TIMEOUT_S = 2.0;
export const RECONNECT_DELAYS_S = [1, 2, 4, 8, 10];
export const JPEG_QUALITY = 0.8;
export const MIN_JPEG_QUALITY = 0.4;
const RETRYABLE = new Set(["internal", "idle_timeout", "overloaded"]);

export class StreamClient {
  /**
   * `url`: the stream's WebSocket URL; `token`, `locale`; `camera()`: the intrinsics to announce;
   * `memory`: the tab's memory (token.js); `grabber`: a camera.js FrameGrabber; `frameId()`: an id of the
   * picture now in the video (a new id = a new picture); `clock()`: seconds; `on`: handlers for
   * status, welcome, step, obs, notice, end, error, fatal and (optional) agent and sent (`{seq, ts,
   * picture}` of each frame sent: the grabbed picture is the handler's to keep and close).
   */
  constructor({ url, token, locale, camera, memory, grabber, frameId, clock, on, WebSocketClass = WebSocket }) {
    Object.assign(this, { url, token, locale, camera, memory, grabber, frameId, clock, on, WebSocketClass });
    this.ws = null;
    this.state = "idle"; // idle | connecting | ready | waiting | ended | stopped
    this.limits = null;
    this.seq = 0;
    this.inFlight = new Map(); // seq -> sent at (clock seconds)
    this.grabbing = false;
    this.lastSentAt = -Infinity;
    this.lastFrameId = null;
    this.quality = JPEG_QUALITY;
    this.attempt = 0;
    this.retryTimer = null;
    this.sentResume = false;
    this.consentSent = false;
    this.left = false; // stopped by `leave`, not by the server: the page may come back
    this.stats = { sent: 0, answered: 0, lost: 0, maxInFlight: 0 };
    this.dispatch = {
      welcome: (m) => this.onWelcome(m),
      obs: (m) => this.onObs(m),
      step: (m) => this.on.step(m),
      notice: (m) => this.on.notice(m),
      end: (m) => this.onEnd(m),
      error: (m) => this.onError(m),
      agent: (m) => this.on.agent && this.on.agent(m),
    };
  }

  connect() {
    if (this.state === "ended" || this.state === "stopped") return;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.state = "connecting";
    this.on.status("connecting");
    const ws = new this.WebSocketClass(this.url);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.onopen = () => {
      if (ws !== this.ws) return;
      const resume = this.memory.get("resume");
      this.sentResume = Boolean(resume);
      this.consentSent = this.memory.get("consent") === "yes";
      ws.send(hello({ token: this.token, locale: this.locale, camera: this.camera(), resume,
        consentStoreFrames: this.consentSent }));
    };
    ws.onmessage = (msg) => {
      if (ws !== this.ws) return;
      if (typeof msg.data === "string") return; // the protocol has no text messages
      let message;
      try {
        message = readServer(msg.data);
      } catch (err) {
        console.warn("fixlens: unreadable server message", err);
        return;
      }
      const handle = this.dispatch[message.t];
      if (handle) handle(message);
    };
    ws.onclose = (msg) => {
      if (ws !== this.ws) return;
      this.ws = null;
      this.inFlight.clear();
      if (this.state === "ended" || this.state === "stopped") return;
      this.scheduleReconnect(msg.code);
    };
  }

  scheduleReconnect(code) {
    const delay = RECONNECT_DELAYS_S[Math.min(this.attempt, RECONNECT_DELAYS_S.length - 1)];
    this.attempt += 1;
    this.state = "waiting";
    this.on.status("reconnecting", { seconds: delay, code });
    this.retryTimer = setTimeout(() => this.connect(), delay * 1000);
  }

  /** Close this connection and say hello again at once (new intrinsics, new consent). */
  reconnectNow(reason) {
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      if (ws.readyState === 1) ws.send(bye(reason));
      ws.close(1000);
    }
    this.inFlight.clear();
    this.connect();
  }

  /** The page is going away: say bye (the session stays resumable) and stop. */
  leave(reason) {
    const ws = this.ws;
    if (this.state === "ended" || this.state === "stopped") return;
    this.state = "stopped";
    this.left = true;
    clearTimeout(this.retryTimer);
    if (ws && ws.readyState === 1) {
      ws.send(bye(reason));
      ws.close(1000);
    }
  }

  /** The page came back from the browser's back-forward cache after `leave`: say hello again. */
  comeBack() {
    if (this.state === "stopped" && this.left) {
      this.left = false;
      this.state = "idle";
      this.attempt = 0;
      this.connect();
    }
  }

  /** The network came back: do not wait for the back-off. */
  networkBack() {
    if (this.state === "waiting") {
      this.attempt = 0;
      this.connect();
    }
  }

  // ------------------------------------------------------------------ messages

  onWelcome(message) {
    this.state = "ready";
    this.attempt = 0;
    this.limits = message.limits;
    this.memory.set("resume", message.resume);
    this.on.status("connected");
    this.on.welcome(message, { consentSent: this.consentSent });
    this.pump();
  }

  onObs(message) {
    this.settleUpTo(message.seq);
    this.on.obs(message);
    this.pump();
  }

  onEnd(message) {
    this.state = "ended";
    this.memory.set("resume", null); // an ended session cannot be resumed
    this.on.status("closed");
    this.on.end(message);
  }

  onError(message) {
    if (typeof message.seq === "number" && this.inFlight.delete(message.seq)) this.stats.answered += 1;
    if (!message.fatal) {
      this.on.error(message);
      return;
    }
    if (message.code === "bad_resume" && this.sentResume) {
      // The tab remembered a session the server no longer knows: start over with the link's token alone.
      this.memory.set("resume", null);
      this.attempt = 0;
      return; // the server closes; onclose reconnects
    }
    if (RETRYABLE.has(message.code)) {
      this.on.error(message);
      return;
    }
    this.state = "stopped";
    this.on.fatal(message);
  }

  settleUpTo(seq) {
    for (const sent of this.inFlight.keys()) {
      if (sent <= seq) {
        this.inFlight.delete(sent);
        this.stats.answered += 1;
      }
    }
  }

  // ------------------------------------------------------------------ frames and events

  /** Send the newest picture if rules 1 and 2 allow it now; call on every new picture and every answer. */
  async pump() {
    const ws = this.ws;
    if (this.state !== "ready" || !ws || this.grabbing || document.hidden) return;
    const now = this.clock();
    for (const [seq, sentAt] of this.inFlight) {
      if (now - sentAt > IN_FLIGHT_TIMEOUT_S) {
        this.inFlight.delete(seq);
        this.stats.lost += 1;
      }
    }
    if (this.inFlight.size >= MAX_IN_FLIGHT || ws.bufferedAmount > 0) return;
    if (now - this.lastSentAt < 1 / this.limits.max_fps) return;
    const id = this.frameId();
    if (id === this.lastFrameId) return;
    this.grabbing = true;
    let shot = null;
    let sent = false;
    try {
      const ts = this.clock();
      shot = await this.grabber.grab(this.limits.max_width, this.limits.max_height, this.quality);
      if (shot.jpeg.length > this.limits.max_frame_bytes) {
        this.quality = Math.max(MIN_JPEG_QUALITY, this.quality - 0.1);
        return;
      }
      if (ws !== this.ws || this.state !== "ready") return;
      const seq = this.seq;
      const data = frame({ seq, ts, jpeg: shot.jpeg, width: shot.width, height: shot.height });
      if (data.length > this.limits.max_message_bytes) {
        this.quality = Math.max(MIN_JPEG_QUALITY, this.quality - 0.1);
        return;
      }
      this.seq += 1;
      ws.send(data);
      sent = true;
      if (this.on.sent) this.on.sent({ seq, ts, picture: shot.picture });
      this.inFlight.set(seq, this.clock());
      this.lastSentAt = now;
      this.lastFrameId = id;
      this.stats.sent += 1;
      this.stats.maxInFlight = Math.max(this.stats.maxInFlight, this.inFlight.size);
    } finally {
      this.grabbing = false;
      // A picture that was not sent is never answered: free it now.
      if (shot && shot.picture && (!sent || !this.on.sent)) shot.picture.then((b) => b && b.close(), () => {});
    }
  }

  /** A user action on step `step`; false when there is no connection to send it on. */
  sendEvent(kind, step, choice) {
    if (this.state !== "ready" || !this.ws) return false;
    this.ws.send(event({ kind, step, choice }));
    return true;
  }
}
