// The customer page: the rear camera streams to the server, which recognises the device and runs the
// troubleshooting scene; the page shows each step and draws its overlays on the device with the poses the
// server returns, over the very pictures those poses were found in (composite.js). Wiring only: each concern
// lives in its own module.

import { CameraError, FrameGrabber, intrinsics, openCamera } from "./camera.js";
import { LatencyMatch } from "./composite.js";
import { browserLocale, format, words as wordsFor } from "./i18n.js";
import { OverlayView, ProductModel } from "./overlays.js";
import { Panel } from "./panel.js";
import { PoseTracker } from "./pose.js";
import { streamUrl } from "./protocol.js";
import { StreamClient } from "./stream.js";
import { LinkError, TabMemory, obtainSessionToken } from "./token.js";

const MAX_DRAW_SCALE = 2; // overlay pixels per video pixel at most: sharp on a phone, cheap on a laptop
const AGENT_RING_SCALE = 1.6; // an agent's mark around a part, relative to a step's highlight ring
const MAX_LATENCIES = 4096; // capture-to-overlay times kept for diagnostics
const PUMP_INTERVAL_MS = 100; // frames also go out on every new picture and every answer; this is the backstop

const byId = (id) => document.getElementById(id);
const clock = () => (performance.timeOrigin + performance.now()) / 1000;

async function start() {
  const locale = browserLocale(navigator.languages && navigator.languages.length ? navigator.languages
    : [navigator.language]);
  const words = wordsFor(locale);
  document.documentElement.lang = locale;
  const memory = new TabMemory(window.sessionStorage);
  let client = null;
  const page = { state: "starting", stats: null, session: null, step: null, outcome: null, notices: [], events: [],
    agent: null, pointing: null, agentMessages: [], pointDrawn: null, shown: null, overlayLatencies: [] };
  const panel = new Panel(words, (kind, step, choice) => {
    if (client && client.sendEvent(kind, step, choice)) page.events.push(kind);
  });
  window.fixlensPage = page; // read-only diagnostics for the browser console and the tests

  let token = null;
  try {
    token = await obtainSessionToken(window.location, window.history, memory);
  } catch (err) {
    const why = err instanceof LinkError ? err.message : String(err);
    panel.showProblem(format(words.link_invalid, { why }));
    page.state = `link_${err instanceof LinkError ? err.code : "failed"}`;
    return;
  }
  if (!token) {
    panel.showProblem(words.no_token);
    page.state = "no_token";
    return;
  }

  panel.setStatus("connecting", words.camera_starting);
  const video = byId("camera");
  try {
    await openCamera(video);
  } catch (err) {
    const kind = err instanceof CameraError ? err.kind : "failed";
    panel.showProblem(kind === "denied" ? words.camera_denied : words.camera_missing);
    page.state = `camera_${kind}`;
    console.warn("fixlens: camera", err);
    return;
  }
  keepScreenOn();

  const stage = byId("stage");
  const view = new OverlayView(byId("overlay"), byId("labels"), words, locale);
  // Overlays go over the picture their pose was found in (composite.js); the pose filter over the live video
  // is the fallback for a browser that cannot keep pictures (no createImageBitmap).
  const match = new LatencyMatch();
  const matched = typeof createImageBitmap === "function";
  const tracker = new PoseTracker();
  const picture = byId("picture");
  const pictureContext = picture.getContext("2d", { alpha: false });
  let pictureDrawn = null; // the ImageBitmap now on `picture`
  let camera = intrinsics(video.videoWidth, video.videoHeight);
  const drawScale = () => {
    const fit = Math.min(stage.clientWidth / camera.width, stage.clientHeight / camera.height);
    return Math.min(MAX_DRAW_SCALE, Math.max(0.5, fit * (window.devicePixelRatio || 1)));
  };
  const fitStage = () => stage.style.setProperty("--video-aspect", `${camera.width} / ${camera.height}`);
  fitStage();
  view.setCamera(camera, drawScale());
  new ResizeObserver(() => view.setCamera(camera, drawScale())).observe(stage);

  let pictures = 0; // counts new camera pictures, so the same picture is never sent twice
  const hasFrameCallback = "requestVideoFrameCallback" in HTMLVideoElement.prototype;
  const grabber = new FrameGrabber(video);
  let productId = null;
  let undrawnTs = null; // capture time of the newest pose not yet drawn (for `overlayLatencies`)
  let stepOverlays = [];
  let agentOverlay = null; // an agent's pointing: drawn like a step's highlight, with the live pose
  const showOverlays = () => view.setOverlays(agentOverlay ? [...stepOverlays, agentOverlay] : stepOverlays);

  client = new StreamClient({
    url: streamUrl(window.location), token, locale, memory, grabber, clock,
    camera: () => camera,
    frameId: () => (hasFrameCallback ? pictures : video.currentTime),
    on: {
      status(kind, detail) {
        page.state = kind;
        const text = kind === "reconnecting" ? format(words.reconnecting, { s: detail.seconds }) : words[kind];
        panel.setStatus(kind, navigator.onLine === false && kind === "reconnecting" ? words.offline : text);
      },
      welcome(message, { consentSent }) {
        page.session = message.session;
        panel.agentsOnCall = message.agents === true;
        // The server says in `welcome` whether it keeps frames of consenting customers; consent is given in
        // `hello`, so a "yes" says hello again on a new connection.
        if (message.store_frames === true && memory.get("consent") === null) {
          panel.askConsent().then((yes) => {
            memory.set("consent", yes ? "yes" : "no");
            if (yes && !consentSent) client.reconnectNow("consent to store frames");
          });
        }
      },
      step(message) {
        page.step = message.step;
        panel.showStep(message);
        stepOverlays = message.overlays || [];
        showOverlays();
      },
      sent({ seq, ts, picture: shot }) {
        match.keep(seq, ts, shot);
      },
      obs(message) {
        if (message.product !== productId && message.product !== null) {
          productId = message.product;
          tracker.reset();
          followProduct(productId, token, view);
        }
        match.answer(message.seq, message.pose || null, clock());
        view.setPartStates(message.parts);
        if (message.pose) {
          tracker.add(message.ts, message.pose, clock());
          undrawnTs = message.ts;
        }
        panel.setProductInView(message.product !== null && Boolean(message.pose));
      },
      notice(message) {
        page.notices.push(message.code);
        panel.showNotice(message);
      },
      agent(message) {
        panel.showAgent(message);
        if (message.kind === "joined") page.agent = message.agent;
        else if (message.kind === "left") page.agent = null;
        else if (message.kind === "message") page.agentMessages.push(message.text);
        if (message.kind === "point" || message.kind === "left") {
          const part = message.kind === "point" ? message.part : null;
          // Larger than a step's ring on the same part, so both stay visible.
          agentOverlay = part ? { kind: "highlight", part, color: message.color || "#3fa9f5", scale: AGENT_RING_SCALE }
            : null;
          page.pointing = part || null;
          showOverlays();
        }
      },
      end(message) {
        page.outcome = message.outcome;
        panel.showEnd(message.outcome, message.text);
        stepOverlays = [];
        agentOverlay = null;
        view.setOverlays([]);
        for (const track of video.srcObject.getTracks()) track.stop();
      },
      error(message) {
        console.warn(`fixlens: server error ${message.code}: ${message.message}`);
      },
      fatal(message) {
        page.state = `fatal_${message.code}`;
        const takenOver = message.code === "forbidden" && /another connection/.test(message.message);
        panel.showProblem(takenOver ? words.taken_over : format(words.link_invalid, { why: message.message }));
      },
    },
  });
  page.stats = client.stats;

  if (hasFrameCallback) {
    const onPicture = () => {
      pictures += 1;
      client.pump();
      video.requestVideoFrameCallback(onPicture);
    };
    video.requestVideoFrameCallback(onPicture);
  }
  setInterval(() => client.pump(), PUMP_INTERVAL_MS);

  video.addEventListener("resize", () => {
    // A turned phone can turn its camera's picture: the announced intrinsics must match the frames.
    if (video.videoWidth === camera.width && video.videoHeight === camera.height) return;
    camera = intrinsics(video.videoWidth, video.videoHeight);
    fitStage();
    view.setCamera(camera, drawScale());
    tracker.reset();
    match.reset();
    client.reconnectNow("camera size changed");
  });
  window.addEventListener("pagehide", () => client.leave("page closed"));
  window.addEventListener("pageshow", (e) => { if (e.persisted) client.comeBack(); });
  window.addEventListener("online", () => client.networkBack());
  window.addEventListener("offline", () => panel.setStatus("offline", words.offline));

  const draw = () => {
    const now = clock();
    let pose = null;
    let opacity = 0;
    // With nothing to draw on the device the live video is shown: it is never late.
    const shown = matched && view.hasContent() ? match.choose(now) : null;
    if (shown) {
      if (pictureDrawn !== shown.picture) {
        if (picture.width !== shown.picture.width || picture.height !== shown.picture.height) {
          picture.width = shown.picture.width;
          picture.height = shown.picture.height;
        }
        pictureContext.drawImage(shown.picture, 0, 0);
        pictureDrawn = shown.picture;
      }
      ({ pose, opacity } = shown);
    } else if (!matched) {
      pose = tracker.poseAt(now);
      opacity = tracker.opacity(now);
    }
    if (picture.hidden !== !shown) picture.hidden = !shown;
    // Diagnostics: which sent frame is on screen (null: the live video).
    page.shown = shown ? { seq: shown.seq, ts: shown.ts } : null;
    // "Turn the device" is answered once the step's parts face the camera; the server says it only later.
    if (view.draw(pose, opacity, now)) panel.clearHint("turn_device");
    if (undrawnTs !== null && pose) {
      // Diagnostics: seconds from a frame's capture to the first overlay drawn with its pose (the bench).
      page.overlayLatencies.push([now, now - undrawnTs]); // [drawn at, seconds since capture]
      if (page.overlayLatencies.length > MAX_LATENCIES) page.overlayLatencies.shift();
      undrawnTs = null;
    }
    // Diagnostics: where the agent's mark was just drawn, in video pixels (the tests compare it with truth).
    const anchor = agentOverlay && view.anchorOf(agentOverlay.part);
    page.pointDrawn = anchor && pose && opacity > 0 ? { ...projectPoint(camera, pose, anchor), at: now } : null;
    requestAnimationFrame(draw);
  };
  requestAnimationFrame(draw);
  client.connect();
}

/** Pixel (u, v) of product point `p` (metres) under `pose` (X_cam = R p + t) with intrinsics `cam`. */
function projectPoint(cam, pose, p) {
  const [r, t] = [pose.R, pose.t];
  const x = r[0] * p[0] + r[1] * p[1] + r[2] * p[2] + t[0];
  const y = r[3] * p[0] + r[4] * p[1] + r[5] * p[2] + t[1];
  const z = r[6] * p[0] + r[7] * p[1] + r[8] * p[2] + t[2];
  return { u: (cam.fx * x) / z + cam.cx, v: (cam.fy * y) / z + cam.cy };
}

/** Parts from REST at once; the model (for the action demonstrations) when it has loaded. */
async function followProduct(productId, token, view) {
  const headers = { Authorization: `Bearer ${token}` };
  const path = `/v1/products/${encodeURIComponent(productId)}`;
  try {
    const response = await fetch(path, { headers, cache: "no-cache" });
    if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
    view.setProduct(await response.json());
    view.setModel(await ProductModel.load(`${path}/model.glb`, token));
  } catch (err) {
    console.warn("fixlens: product", err); // overlays fall back to plain shapes without the model
  }
}

/** Ask the phone not to dim the screen while the customer works with both hands. */
function keepScreenOn() {
  if (!("wakeLock" in navigator)) return;
  const request = () => navigator.wakeLock.request("screen").catch(() => {});
  request();
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") request();
  });
}

start();
