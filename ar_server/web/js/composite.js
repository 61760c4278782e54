// Latency-matched compositing: overlays are drawn over the very picture their pose was estimated on.
//
// The server answers a frame a few hundred milliseconds after the page captured it. Drawn over the live
// video, an overlay built from that answer trails a moving camera by the whole round trip (measured: up to
// 30 px on a handheld walk, tests/web/test_agent_handoff.py). Video see-through AR avoids this by showing the
// camera picture the pose belongs to: the page keeps the pictures it sent, by `seq`, and shows the one the
// newest `obs` answers, with that obs's pose. The picture is late by the round trip, but the overlays stick
// to the device in every picture shown; no prediction guesses where a hand will go.
//
// Rules:
// 1. `keep` is called for every frame sent, with the picture exactly as encoded (camera.js FrameGrabber).
//    At most MAX_KEPT wait for their answer; older ones are released.
// 2. An `obs` for `seq` makes that picture the one to show (older pictures are released), with its pose, or
//    with none when the product was not found in it. Pictures arrive asynchronously (ImageBitmap promises);
//    one answered after a newer one is dropped.
// 3. `choose(now)` says what to show: that picture and pose, with an opacity that fades like the pose
//    filter's (pose.js STALE_AFTER_S, FADE_S) once answers stop; `null` for the live video. Live video is
//    shown when nothing has been answered, when answers stopped for longer than the fade, and once the
//    product has been out of the answers for LOST_HOLD_S (shorter losses show the answered pictures
//    without overlays, so the picture never jumps in time on a single missed detection).

import { FADE_S, STALE_AFTER_S } from "./pose.js";

export const MAX_KEPT = 8; // pictures awaiting an answer; the stream allows two in flight
export const LOST_HOLD_S = 1.0; // no pose for this long: back to the live video

export class LatencyMatch {
  constructor() {
    this.kept = new Map(); // seq -> Promise<ImageBitmap | null>
    this.current = null; // {seq, ts, picture, pose, received}: the newest answered picture
    this.posedAt = null; // when the newest answer with a pose arrived
    this.newestAnswered = -1;
    this.generation = 0; // bumped by reset: an answer still awaiting its picture then belongs to the past
  }

  /** The picture of frame `seq`, captured at `ts`, as the page sent it (a promise of an ImageBitmap). */
  keep(seq, ts, picture) {
    this.kept.set(seq, { ts, picture: Promise.resolve(picture).catch(() => null) });
    while (this.kept.size > MAX_KEPT) this.release(this.kept.keys().next().value);
  }

  /** The server's answer for frame `seq`: its pose (or null), received at `received` (page clock, s). */
  async answer(seq, pose, received) {
    if (seq <= this.newestAnswered) return;
    this.newestAnswered = seq;
    for (const older of [...this.kept.keys()]) if (older < seq) this.release(older);
    const entry = this.kept.get(seq);
    if (!entry) return;
    this.kept.delete(seq);
    const generation = this.generation;
    const picture = await entry.picture;
    if (!picture) return;
    if (generation !== this.generation || (this.current && this.current.seq > seq)) { // reset, or overtaken
      picture.close();
      return;
    }
    if (this.current) this.current.picture.close();
    this.current = { seq, ts: entry.ts, picture, pose, received };
    if (pose) this.posedAt = received;
  }

  /** What to show at `now`: {picture, pose, opacity, seq, ts}, or null for the live video. */
  choose(now) {
    const shown = this.current;
    if (!shown) return null;
    const age = now - shown.received;
    if (age > STALE_AFTER_S + FADE_S) return null;
    if (!shown.pose && (this.posedAt === null || now - this.posedAt > LOST_HOLD_S)) return null;
    const opacity = age <= STALE_AFTER_S ? 1 : Math.max(0, 1 - (age - STALE_AFTER_S) / FADE_S);
    return { picture: shown.picture, pose: shown.pose, opacity, seq: shown.seq, ts: shown.ts };
  }

  /** Forget everything (a new camera size, a new connection). */
  reset() {
    for (const seq of [...this.kept.keys()]) this.release(seq);
    if (this.current) this.current.picture.close();
    this.current = null;
    this.posedAt = null;
    this.newestAnswered = -1;
    this.generation += 1;
  }

  release(seq) {
    const entry = this.kept.get(seq);
    this.kept.delete(seq);
    if (entry) entry.picture.then((bitmap) => bitmap && bitmap.close());
  }
}
