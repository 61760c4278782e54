// Between server results: which product pose to draw now, from poses that belong to older frames.
//
// The customer page draws over the picture each pose belongs to (composite.js) and needs none of this; it
// uses this filter over the live video only in a browser that cannot keep pictures (no createImageBitmap).
//
// The same rule and constants as the Panda3D client's client_panda3d/pose_filter.py (its docstring has the
// measurements behind them): predict from the last two results at a damped constant velocity, at most
// MAX_PREDICT_S ahead, ease the drawn pose toward that prediction so a new result never makes an overlay
// jump, and fade the overlays out once no fresh pose has arrived for STALE_AFTER_S.
//
// A pose is {R: 9 numbers, row-major, t: 3 numbers, metres} with X_cam = R X_product + t (OpenCV camera
// axes), exactly as `obs.pose` carries it. Times are seconds on the page's clock (the frames' `ts`).

export const MAX_PREDICT_S = 0.1; // never extrapolate further than this past the newest result
export const VELOCITY_DAMPING = 0.2; // trust the measured velocity only a little: it is mostly shake and noise
export const MAX_GAP_S = 0.5; // two results further apart than this give no usable velocity
export const EASE_TAU_S = 0.04; // time constant of the drawn pose easing toward the prediction
export const STALE_AFTER_S = 1.0; // no fresh pose for this long: overlays start to fade
export const FADE_S = 0.5; // ... and are gone this much later

function mul(a, b) {
  const out = new Array(9);
  for (let i = 0; i < 3; i++) {
    for (let j = 0; j < 3; j++) {
      out[3 * i + j] = a[3 * i] * b[j] + a[3 * i + 1] * b[3 + j] + a[3 * i + 2] * b[6 + j];
    }
  }
  return out;
}

function transpose(a) {
  return [a[0], a[3], a[6], a[1], a[4], a[7], a[2], a[5], a[8]];
}

/** Axis * angle (radians, 3 numbers) of rotation `R`. */
export function rotationLog(R) {
  const cos = Math.max(-1, Math.min(1, (R[0] + R[4] + R[8] - 1) / 2));
  const angle = Math.acos(cos);
  if (angle < 1e-9) return [0, 0, 0];
  const w = [R[7] - R[5], R[2] - R[6], R[3] - R[1]];
  if (Math.PI - angle < 1e-6) { // near 180 degrees the antisymmetric part vanishes; use the diagonal
    const axis = [R[0], R[4], R[8]].map((d, i) => Math.sqrt(Math.max((d + 1) / 2, 0)) * (w[i] < 0 ? -1 : 1));
    const norm = Math.hypot(...axis);
    return axis.map((a) => (a / norm) * angle);
  }
  const s = 2 * Math.sin(angle);
  return w.map((x) => (x / s) * angle);
}

/** Rotation matrix of axis * angle `w` (Rodrigues). */
export function rotationExp(w) {
  const angle = Math.hypot(w[0], w[1], w[2]);
  if (angle < 1e-12) return [1, 0, 0, 0, 1, 0, 0, 0, 1];
  const [x, y, z] = w.map((v) => v / angle);
  const s = Math.sin(angle);
  const c = 1 - Math.cos(angle);
  return [
    1 + c * (-z * z - y * y), -s * z + c * x * y, s * y + c * x * z,
    s * z + c * x * y, 1 + c * (-z * z - x * x), -s * x + c * y * z,
    -s * y + c * x * z, s * x + c * y * z, 1 + c * (-y * y - x * x),
  ];
}

/** The pose `s` of the way from `a` to `b` (s > 1 extrapolates): rotation on the geodesic, translation linear. */
export function interpolate(a, b, s) {
  const delta = rotationLog(mul(b.R, transpose(a.R)));
  return {
    R: mul(rotationExp(delta.map((v) => v * s)), a.R),
    t: a.t.map((v, i) => v + (b.t[i] - v) * s),
  };
}

/** The camera's position in the product frame (metres): -R^T t. */
export function cameraPosition(pose) {
  const { R, t } = pose;
  return [0, 1, 2].map((j) => -(R[j] * t[0] + R[3 + j] * t[1] + R[6 + j] * t[2]));
}

export class PoseTracker {
  constructor({ predict = true, easeTauS = EASE_TAU_S } = {}) {
    this.predict = predict;
    this.easeTauS = easeTauS;
    this.reset();
  }

  /** Forget every pose (another product came into view, or the session changed). */
  reset() {
    this.samples = []; // newest last, at most two: {ts, pose, received}
    this.shown = null;
    this.shownAt = null;
  }

  /** A server result for the frame captured at `ts`; one older than the newest is ignored. */
  add(ts, pose, received) {
    const newest = this.samples[this.samples.length - 1];
    if (newest && ts <= newest.ts) return;
    this.samples = [...this.samples.slice(-1), { ts, pose, received }];
  }

  predicted(now) {
    const n = this.samples.length;
    if (n === 0) return null;
    const last = this.samples[n - 1];
    if (!this.predict || n < 2) return last.pose;
    const prev = this.samples[0];
    const gap = last.ts - prev.ts;
    if (!(gap > 0 && gap <= MAX_GAP_S)) return last.pose;
    const ahead = Math.min(Math.max(now - last.ts, 0), MAX_PREDICT_S);
    return interpolate(prev.pose, last.pose, 1 + (VELOCITY_DAMPING * ahead) / gap);
  }

  /** The pose to draw at `now`: the prediction, eased so that it never jumps. */
  poseAt(now) {
    const target = this.predicted(now);
    if (target === null) return null;
    if (this.shown === null || now <= this.shownAt || this.easeTauS <= 0) {
      this.shown = target;
      this.shownAt = now;
      return target;
    }
    const alpha = 1 - Math.exp(-(now - this.shownAt) / this.easeTauS);
    this.shown = interpolate(this.shown, target, alpha);
    this.shownAt = now;
    return this.shown;
  }

  /** 1 while the newest pose is fresh, fading to 0 over FADE_S once it is STALE_AFTER_S old; 0 with none. */
  opacity(now) {
    const n = this.samples.length;
    if (n === 0) return 0;
    const age = now - this.samples[n - 1].received;
    if (age <= STALE_AFTER_S) return 1;
    return Math.max(0, 1 - (age - STALE_AFTER_S) / FADE_S);
  }
}
