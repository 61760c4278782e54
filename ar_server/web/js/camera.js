// The rear camera, its intrinsics, and JPEG frames grabbed from it.

// Horizontal field of view assumed for a phone camera, degrees. The server's own default is
// DEFAULT_HFOV_DEG in product_models/camera.py (used by vision/pose.py when a hello carries no camera); keep
// the two equal so that the page draws with the intrinsics the server computes poses with.
export const DEFAULT_HFOV_DEG = 63.0;

export const CAMERA_CONSTRAINTS = {
  audio: false,
  video: { facingMode: { ideal: "environment" }, width: { ideal: 640 }, height: { ideal: 480 } },
};

export class CameraError extends Error {
  constructor(kind, message) {
    super(message);
    this.kind = kind; // "denied" | "missing" | "failed"
  }
}

/** Start the camera into `video`; resolves once the video has a size. */
export async function openCamera(video, mediaDevices = navigator.mediaDevices) {
  if (!mediaDevices || !mediaDevices.getUserMedia) {
    throw new CameraError("missing", "this browser offers no camera access (getUserMedia)");
  }
  let stream;
  try {
    stream = await mediaDevices.getUserMedia(CAMERA_CONSTRAINTS);
  } catch (err) {
    const kind = err && (err.name === "NotAllowedError" || err.name === "SecurityError") ? "denied"
      : err && (err.name === "NotFoundError" || err.name === "OverconstrainedError") ? "missing" : "failed";
    throw new CameraError(kind, `${err && err.name}: ${err && err.message}`);
  }
  video.srcObject = stream;
  video.muted = true;
  video.playsInline = true;
  await video.play();
  while (!video.videoWidth || !video.videoHeight) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return stream;
}

/**
 * Pinhole intrinsics of a `width` x `height` frame (protocol `hello.camera`): square pixels, principal point at
 * the centre (pixel (0, 0) is the centre of the top-left pixel). The field of view spans the longer side: a
 * phone's sensor is landscape, and a portrait video is the same sensor turned.
 */
export function intrinsics(width, height, hfovDeg = DEFAULT_HFOV_DEG) {
  const f = (Math.max(width, height) / 2) / Math.tan((hfovDeg * Math.PI) / 360);
  return { fx: f, fy: f, cx: (width - 1) / 2, cy: (height - 1) / 2, width, height };
}

/** The largest size of `width` x `height`'s aspect within the server's limits (never enlarged). */
export function fitWithin(width, height, maxWidth, maxHeight) {
  const scale = Math.min(1, maxWidth / width, maxHeight / height);
  return { width: Math.max(1, Math.floor(width * scale)), height: Math.max(1, Math.floor(height * scale)) };
}

/** Grabs the video's current picture as a JPEG. One canvas, reused. */
export class FrameGrabber {
  constructor(video) {
    this.video = video;
    this.canvas = document.createElement("canvas");
    this.context = this.canvas.getContext("2d", { alpha: false });
  }

  /**
   * {jpeg: Uint8Array, width, height, picture} of the picture now on screen, at most `maxWidth` x `maxHeight`.
   * `picture` is a promise of the same pixels as an ImageBitmap (null where the browser has no
   * createImageBitmap), for showing the picture again with the pose the server finds in it (composite.js).
   */
  async grab(maxWidth, maxHeight, quality) {
    const size = fitWithin(this.video.videoWidth, this.video.videoHeight, maxWidth, maxHeight);
    if (this.canvas.width !== size.width || this.canvas.height !== size.height) {
      this.canvas.width = size.width;
      this.canvas.height = size.height;
    }
    this.context.drawImage(this.video, 0, 0, size.width, size.height);
    // Copied now, before the canvas is drawn again: createImageBitmap takes a canvas's pixels at the call.
    const picture = typeof createImageBitmap === "function" ? createImageBitmap(this.canvas) : Promise.resolve(null);
    const blob = await new Promise((resolve) => this.canvas.toBlob(resolve, "image/jpeg", quality));
    if (!blob) {
      picture.then((bitmap) => bitmap && bitmap.close(), () => {});
      throw new Error("the browser could not encode a JPEG");
    }
    return { jpeg: new Uint8Array(await blob.arrayBuffer()), width: size.width, height: size.height, picture };
  }
}
