// A step's overlays, drawn in 3-D on the device with the pose of each `obs`: highlight rings, arrows,
// labels, and a demonstration of the action (for a port, the product's own cable and plug from its glTF).
//
// The drawing follows the Panda3D client (client_panda3d/overlays.py) so both clients show the same thing:
// the same sizes and periods, overlays over the camera picture with no depth test, and overlays of a part
// that faces away from the camera drawn faint with a "turn the device" label instead of the part's own.
// Part geometry comes from `GET /v1/products/{id}` (anchor, facing, size, and how trays and covers move with
// their state, so overlays sit on an opened one) and the model from `GET /v1/products/{id}/model.glb`. Labels are page elements placed over the canvas, so they stay sharp and
// readable at any size.

import * as THREE from "../vendor/three/build/three.module.js";
import { GLTFLoader } from "../vendor/three/examples/jsm/loaders/GLTFLoader.js";
import { cameraPosition } from "./pose.js";

// Tuning (metres and seconds), as in client_panda3d/overlays.py.
const RING_MARGIN_M = 0.004; // ring radius beyond the part's half size
const RING_MIN_RADIUS_M = 0.007;
const LIFT_M = 0.0015; // overlays float this far off the surface so they never sink into it
const ARROW_LENGTH_M = 0.045;
const ARROW_TILT = 0.9; // arrows lean toward the face's "up" so a head-on view still shows their length
const PRESS_PERIOD_S = 1.4;
const SLIDE_PERIOD_S = 2.0;
const MOVE_PERIOD_S = 2.4;
const DEFAULT_HOLD_S = 5.0;
const SLIDE_OUT_M = 0.05; // how far a plug or sheet starts out from its seat
const GHOST_ALPHA = 0.6;
const BEHIND_ALPHA = 0.3; // overlays of a part on the far side are drawn this faint
const LABEL_LIFT_M = 0.012; // labels sit this far above the ring
const NEAR_M = 0.01;
const FAR_M = 20;
const GHOST_RGB = 0xbfebff;
const HALO_RGB = 0x0d0d0d;

// product_models/catalog.py: FACING_NORMALS and the (right, up) of each face.
const FACES = {
  front: { right: [1, 0, 0], up: [0, 0, 1], normal: [0, -1, 0] },
  back: { right: [-1, 0, 0], up: [0, 0, 1], normal: [0, 1, 0] },
  left: { right: [0, -1, 0], up: [0, 0, 1], normal: [-1, 0, 0] },
  right: { right: [0, 1, 0], up: [0, 0, 1], normal: [1, 0, 0] },
  top: { right: [1, 0, 0], up: [0, 1, 0], normal: [0, 0, 1] },
  bottom: { right: [1, 0, 0], up: [0, -1, 0], normal: [0, 0, -1] },
};
// scenes: arrow directions other than in/out are product-frame axes.
const AXES = { up: [0, 0, 1], down: [0, 0, -1], left: [-1, 0, 0], right: [1, 0, 0], front: [0, -1, 0],
  back: [0, 1, 0] };

const v3 = (a) => new THREE.Vector3(a[0], a[1], a[2]);

/** Where a part is at rest: anchor, face axes (product frame) and ring radius, from the REST part. */
export function partFrame(part) {
  // An antenna stands up from its face, so its frame is the one a viewer in front of the product sees.
  const face = FACES[part.kind === "antenna" ? "front" : part.facing] || FACES.front;
  const w = part.size_mm[0] / 1000;
  const h = part.size_mm[1] / 1000;
  let radius = Math.max(RING_MIN_RADIUS_M, 0.5 * Math.max(w, h) + RING_MARGIN_M);
  if (part.kind === "antenna") radius = RING_MIN_RADIUS_M + 0.004;
  return { anchor: v3(part.anchor), right: v3(face.right), up: v3(face.up), normal: v3(face.normal), radius,
    size: [w, h] };
}

/**
 * The 4 x 4 transform (product frame) that carries part `name` from where it rests to where `states` (part ->
 * state) put it, following `attached_to` (docs/PROTOCOL.md §9 "Moving parts"; product_models/catalog.py
 * `part_transform`). `parts` maps names to REST parts.
 */
export function partTransform(parts, name, states) {
  const out = new THREE.Matrix4();
  const seen = new Set();
  let part = parts.get(name);
  while (part && !seen.has(part.name)) {
    seen.add(part.name);
    const state = part.name in states ? states[part.name] : part.healthy;
    const motion = part.moves && part.moves[state];
    if (motion) {
      const pivot = v3(motion.pivot);
      const turn = new THREE.Matrix4().makeRotationAxis(v3(motion.axis).normalize(), (motion.degrees * Math.PI) / 180);
      const m = new THREE.Matrix4().makeTranslation(pivot.x + motion.translate[0], pivot.y + motion.translate[1],
        pivot.z + motion.translate[2]).multiply(turn).multiply(new THREE.Matrix4().makeTranslation(-pivot.x,
        -pivot.y, -pivot.z));
      out.premultiply(m);
    }
    part = part.attached_to ? parts.get(part.attached_to) : null;
  }
  return out;
}

/** A matrix whose local +z is `zAxis` at `origin`, local +y as close to `upHint` as it can be. */
function frameMatrix(origin, zAxis, upHint) {
  const z = zAxis.clone().normalize();
  let hint = upHint ? upHint.clone() : new THREE.Vector3(0, 0, 1);
  if (Math.abs(hint.dot(z)) > 0.95) hint = Math.abs(z.y) < 0.9 ? new THREE.Vector3(0, 1, 0) : new THREE.Vector3(1, 0, 0);
  const x = new THREE.Vector3().crossVectors(hint, z).normalize();
  const y = new THREE.Vector3().crossVectors(z, x);
  return new THREE.Matrix4().makeBasis(x, y, z).setPosition(origin);
}

function place(object, matrix) {
  object.matrixAutoUpdate = false;
  object.matrix.copy(matrix);
  object.matrixWorldNeedsUpdate = true;
  return object;
}

function cycle(now, period) {
  return (now % period) / period;
}

function ease(s) {
  const c = Math.min(Math.max(s, 0), 1);
  return c * c * (3 - 2 * c);
}

/** 0 (away) .. 1 (pressed) .. 0 over one cycle, resting pressed in the middle third. */
function pressDepth(phase) {
  if (phase < 0.35) return 0.5 - 0.5 * Math.cos((Math.PI * phase) / 0.35);
  if (phase < 0.65) return 1;
  return 0.5 + 0.5 * Math.cos((Math.PI * (phase - 0.65)) / 0.35);
}

/** A flat overlay material: unlit, translucent, drawn over the camera picture in a fixed order. */
function flat(color, alpha) {
  const material = new THREE.MeshBasicMaterial({ color, transparent: true, opacity: alpha, depthTest: false,
    depthWrite: false, side: THREE.DoubleSide });
  material.userData.alpha = alpha;
  return material;
}

function mesh(geometry, material, order) {
  const m = new THREE.Mesh(geometry, material);
  m.renderOrder = order;
  return m;
}

/** A 3-D arrow along local +z from 0 to `length`, head at +z. */
function arrowShape(length, radius, material, order) {
  const group = new THREE.Group();
  const head = Math.min(length * 0.4, radius * 5);
  const shaft = new THREE.CylinderGeometry(radius, radius, length - head, 10).rotateX(Math.PI / 2)
    .translate(0, 0, (length - head) / 2);
  const tip = new THREE.ConeGeometry(radius * 2.6, head, 12).rotateX(Math.PI / 2)
    .translate(0, 0, length - head / 2);
  group.add(mesh(shaft, material, order), mesh(tip, material, order));
  return group;
}

class Highlight {
  constructor(frame, color, order) {
    this.frame = frame;
    const width = Math.max(0.003, frame.radius * 0.24);
    this.materials = [flat(HALO_RGB, 0.45), flat(color, 0.16), flat(color, 0.95)];
    const r = frame.radius;
    this.object = place(new THREE.Group(), frameMatrix(frame.anchor.clone().addScaledVector(frame.normal, LIFT_M),
      frame.normal, frame.up));
    this.object.add(
      mesh(new THREE.RingGeometry(r - 0.95 * width, r + 0.95 * width, 48), this.materials[0], order),
      mesh(new THREE.CircleGeometry(r - width / 2, 32), this.materials[1], order + 1),
      mesh(new THREE.RingGeometry(r - width / 2, r + width / 2, 48), this.materials[2], order + 2),
    );
  }

  update() {}
}

class Arrow {
  constructor(frame, color, direction, order) {
    this.frame = frame;
    this.direction = direction;
    this.materials = [flat(HALO_RGB, 0.5), flat(color, 0.95)];
    this.object = new THREE.Group();
    this.outline = arrowShape(ARROW_LENGTH_M, 0.0042, this.materials[0], order);
    this.arrow = arrowShape(ARROW_LENGTH_M, 0.003, this.materials[1], order + 1);
    this.object.add(this.outline, this.arrow);
    // Lean toward the upper right of the face: a head-on view still shows the arrow's length, and the label
    // (straight above the part) stays clear of it.
    this.lean = frame.normal.clone().addScaledVector(frame.right, ARROW_TILT * 0.75)
      .addScaledVector(frame.up, ARROW_TILT * 0.45).normalize();
  }

  update(now) {
    const f = this.frame;
    const bob = 0.006 * Math.sin((2 * Math.PI * now) / 1.2);
    const gap = f.radius + 0.004;
    let start;
    let axis;
    if (this.direction === "out") {
      start = f.anchor.clone().addScaledVector(f.normal, gap).addScaledVector(this.lean, 0.004 + bob);
      axis = this.lean;
    } else if (this.direction in AXES) {
      axis = v3(AXES[this.direction]);
      const tip = f.anchor.clone().addScaledVector(f.normal, gap).addScaledVector(axis, -bob);
      start = tip.addScaledVector(axis, -ARROW_LENGTH_M);
    } else { // "in"
      const tip = f.anchor.clone().addScaledVector(this.lean, gap + bob);
      start = tip.addScaledVector(this.lean, ARROW_LENGTH_M);
      axis = this.lean.clone().negate();
    }
    const matrix = frameMatrix(start, axis, f.normal);
    place(this.outline, matrix);
    place(this.arrow, matrix);
  }
}

/** The action, played over and over by a translucent ghost. */
class Demonstration {
  constructor(part, frame, action, color, order, model) {
    this.part = part;
    this.frame = frame;
    this.action = action;
    this.order = order;
    this.ghost = new THREE.MeshLambertMaterial({ color: GHOST_RGB, transparent: true, opacity: GHOST_ALPHA,
      depthTest: false, depthWrite: false, side: THREE.DoubleSide });
    this.ghost.userData.alpha = GHOST_ALPHA;
    this.accent = flat(color, 0.95);
    this.materials = [this.ghost, this.accent];
    this.object = new THREE.Group();
    this.mover = new THREE.Group();
    this.mover.matrixAutoUpdate = false;
    this.object.add(this.mover);
    this.arc = null;
    const [w, h] = frame.size;
    if (action === "press" || action === "hold") {
      const r = Math.max(0.0035, Math.min(0.007, 0.5 * Math.min(w, h)));
      const finger = new THREE.CapsuleGeometry(r, 0.06, 4, 12).rotateX(Math.PI / 2).translate(0, 0, 0.03 + r);
      this.mover.add(mesh(finger, this.ghost, order));
    } else if (["plug", "unplug", "insert", "remove"].includes(action)) {
      const cable = model && model.node(`cable_${part.name}`);
      const shape = cable || (part.kind === "port" ? null : model && model.node(part.name));
      if (shape) {
        this.mover.add(this.fromModel(shape, order));
      } else if (part.kind === "port") {
        this.mover.add(mesh(new THREE.BoxGeometry(w * 0.8, h * 0.8, 0.016).translate(0, 0, 0.008), this.ghost, order));
        this.mover.add(mesh(new THREE.CylinderGeometry(Math.min(w, h) * 0.22, Math.min(w, h) * 0.22, 0.074, 10)
          .rotateX(Math.PI / 2).translate(0, 0, 0.053), this.ghost, order));
      } else {
        this.mover.add(mesh(new THREE.BoxGeometry(w, h, 0.002), this.ghost, order));
      }
    } else { // open, close: the part itself (or a slab of its size) moving out along its normal
      const shape = model && model.node(part.name);
      this.mover.add(shape ? this.fromModel(shape, order)
        : mesh(new THREE.BoxGeometry(w, h, 0.004), this.ghost, order));
    }
  }

  /** A ghost copy of a model node, kept in product coordinates (the mover then slides it). */
  fromModel(node, order) {
    const copy = node.clone(true);
    copy.traverse((child) => {
      child.userData.shared = true; // its geometry belongs to the model, which later steps use again
      if (child.isMesh) {
        child.material = this.ghost;
        child.renderOrder = order;
      }
    });
    const holder = new THREE.Group();
    place(holder, node.userData.productMatrix);
    holder.add(copy);
    holder.userData.fromModel = true;
    return holder;
  }

  update(now) {
    const f = this.frame;
    const fromModel = this.mover.children.some((c) => c.userData.fromModel);
    let out = 0; // metres along the normal
    if (this.action === "press" || this.action === "hold") {
      let depth;
      if (this.action === "press") {
        depth = pressDepth(cycle(now, PRESS_PERIOD_S));
      } else {
        const span = DEFAULT_HOLD_S + 1;
        const phase = cycle(now, span);
        depth = ease((phase * span) / 0.5); // press in over 0.5 s, then stay
        this.holdArc(Math.max(0, (phase * span - 0.5) / DEFAULT_HOLD_S));
      }
      out = LIFT_M + 0.035 * (1 - depth);
    } else if (["plug", "unplug", "insert", "remove"].includes(this.action)) {
      const s = ease(cycle(now, SLIDE_PERIOD_S) * 1.25);
      const inward = this.action === "plug" || this.action === "insert";
      out = SLIDE_OUT_M * (inward ? 1 - s : s) + (fromModel ? 0 : LIFT_M);
    } else {
      const s = ease(cycle(now, MOVE_PERIOD_S) * 1.3);
      out = SLIDE_OUT_M * (this.action === "open" ? s : 1 - s) + 0.002;
    }
    if (fromModel) {
      this.mover.matrix.makeTranslation(f.normal.x * out, f.normal.y * out, f.normal.z * out);
    } else {
      this.mover.matrix.copy(frameMatrix(f.anchor.clone().addScaledVector(f.normal, out), f.normal, f.up));
    }
    this.mover.matrixWorldNeedsUpdate = true;
  }

  holdArc(sweep) {
    if (this.arc) {
      this.object.remove(this.arc);
      this.arc.geometry.dispose();
    }
    const f = this.frame;
    const s = Math.min(Math.max(sweep, 0), 1);
    const r = f.radius + 0.006;
    // From the top of the ring, clockwise seen from outside the face.
    const geometry = new THREE.RingGeometry(r - 0.0015, r + 0.0015, 48, 1, Math.PI / 2 - 2 * Math.PI * s,
      Math.max(1e-4, 2 * Math.PI * s));
    this.arc = place(mesh(geometry, this.accent, this.order + 3),
      frameMatrix(f.anchor.clone().addScaledVector(f.normal, LIFT_M), f.normal, f.up));
    this.object.add(this.arc);
  }
}

/** The product's glTF model, its nodes addressable by part name, in product coordinates. */
export class ProductModel {
  constructor(gltfScene) {
    // glTF is +y up; the product frame is +z up (product_models/modeling/gltf.py writes (x, z, -y)).
    const toProduct = new THREE.Matrix4().makeRotationX(Math.PI / 2);
    gltfScene.updateMatrixWorld(true);
    this.nodes = new Map();
    gltfScene.traverse((node) => {
      if (node.name && !this.nodes.has(node.name)) {
        node.userData.productMatrix = toProduct.clone().multiply(node.parent ? node.parent.matrixWorld
          : new THREE.Matrix4());
        this.nodes.set(node.name, node);
      }
    });
  }

  node(name) {
    return this.nodes.get(name) || null;
  }

  static async load(url, token) {
    const loader = new GLTFLoader();
    loader.setRequestHeader({ Authorization: `Bearer ${token}` });
    const gltf = await loader.loadAsync(url);
    return new ProductModel(gltf.scene);
  }
}

/** OpenGL projection of pinhole intrinsics (pixel (0, 0) is the centre of the top-left pixel). */
export function projectionMatrix(cam, near = NEAR_M, far = FAR_M) {
  const { fx, fy, cx, cy, width: w, height: h } = cam;
  return new THREE.Matrix4().set(
    (2 * fx) / w, 0, 1 - (2 * cx + 1) / w, 0,
    0, (2 * fy) / h, (2 * cy + 1) / h - 1, 0,
    0, 0, -(far + near) / (far - near), (-2 * far * near) / (far - near),
    0, 0, -1, 0,
  );
}

/** The product -> OpenGL camera matrix of an OpenCV pose (OpenGL's camera looks down -z with +y up). */
export function poseMatrix(pose) {
  const { R, t } = pose;
  return new THREE.Matrix4().set(
    R[0], R[1], R[2], t[0],
    -R[3], -R[4], -R[5], -t[1],
    -R[6], -R[7], -R[8], -t[2],
    0, 0, 0, 1,
  );
}

export class OverlayView {
  /**
   * `canvas`: the WebGL canvas over the video (same aspect, laid out like it); `labelLayer`: an element over
   * both for the labels; `words`: the page's words (for the "turn the device" label).
   */
  constructor(canvas, labelLayer, words, locale) {
    this.canvas = canvas;
    this.labelLayer = labelLayer;
    this.words = words;
    this.locale = locale;
    this.renderer = new THREE.WebGLRenderer({ canvas, alpha: true, antialias: true });
    this.renderer.setClearColor(0x000000, 0);
    this.scene = new THREE.Scene();
    this.scene.add(new THREE.AmbientLight(0xffffff, 1.6));
    const light = new THREE.DirectionalLight(0xffffff, 1.4);
    light.position.set(0.3, 1, 0.6);
    this.scene.add(light);
    this.camera = new THREE.PerspectiveCamera();
    this.root = new THREE.Group();
    this.root.matrixAutoUpdate = false;
    this.scene.add(this.root);
    this.intrinsics = null;
    this.product = null;
    this.parts = new Map();
    this.model = null;
    this.overlays = [];
    this.items = [];
    this.labels = [];
    this.cleared = true;
    this.states = {}; // part -> its last state read (obs.parts), for parts that move with their state
  }

  /** The parts' states from an `obs` (`parts`: name -> {state, ...}); a part not read keeps its last state. */
  setPartStates(parts) {
    for (const [name, seen] of Object.entries(parts || {})) {
      if (seen && typeof seen.state === "string") this.states[name] = seen.state;
    }
  }

  /** Where part `name`'s anchor is now (metres, product frame), its state's motion applied; null if unknown. */
  anchorOf(name) {
    const part = this.parts.get(name);
    if (!part) return null;
    const p = v3(part.anchor).applyMatrix4(partTransform(this.parts, name, this.states));
    return [p.x, p.y, p.z];
  }

  /** The camera the poses belong to; `scale` sets the drawing resolution relative to the video's. */
  setCamera(intrinsics, scale) {
    this.intrinsics = intrinsics;
    const width = Math.max(1, Math.round(intrinsics.width * scale));
    const height = Math.max(1, Math.round(intrinsics.height * scale));
    if (this.canvas.width !== width || this.canvas.height !== height) this.renderer.setSize(width, height, false);
    this.camera.projectionMatrix.copy(projectionMatrix(intrinsics));
    this.camera.projectionMatrixInverse.copy(this.camera.projectionMatrix).invert();
  }

  /** The recognised product (`GET /v1/products/{id}`) and, once loaded, its model. */
  setProduct(product, model) {
    this.product = product;
    this.parts = new Map(product.parts.map((p) => [p.name, p]));
    this.states = {};
    this.model = model || null;
    this.build();
  }

  setModel(model) {
    this.model = model;
    this.build();
  }

  setOverlays(overlays) {
    this.overlays = overlays || [];
    this.build();
  }

  build() {
    for (const item of this.items) {
      this.root.remove(item.holder);
      item.object.traverse((o) => o.geometry && !o.userData.shared && o.geometry.dispose());
      for (const m of item.materials) m.dispose();
    }
    this.items = [];
    for (const label of this.labels) label.element.remove();
    this.labels = [];
    if (!this.product) return;
    const behind = new Set();
    this.overlays.forEach((ov, i) => {
      const part = this.parts.get(ov.part);
      if (!part) return; // an overlay on a part this product lacks is skipped, as the Panda3D client does
      const frame = partFrame(part);
      if (ov.scale > 0) frame.radius *= ov.scale; // the page's own marks (an agent's pointing) stand apart
      const color = new THREE.Color(ov.color);
      const order = 10 + 4 * i;
      let item = null;
      if (ov.kind === "highlight") item = new Highlight(frame, color, order);
      else if (ov.kind === "arrow") item = new Arrow(frame, color, ov.direction, order);
      else if (ov.kind === "animate") item = new Demonstration(part, frame, ov.action, color, order, this.model);
      else if (ov.kind === "label") {
        this.addLabel(part.name, frame, ov.text || localized(part.label, this.locale), ov.color, false);
      }
      // any other kind: unknown to this page, skipped as the protocol asks
      if (item) {
        item.part = part.name;
        // The holder carries the item with its part when the part moves (an opened tray or cover).
        item.holder = new THREE.Group();
        item.holder.matrixAutoUpdate = false;
        item.holder.add(item.object);
        this.items.push(item);
        this.root.add(item.holder);
      }
      if (!behind.has(part.name)) {
        behind.add(part.name);
        const text = this.words.behind.replace("{part}", localized(part.label, this.locale));
        this.addLabel(part.name, frame, text, ov.color, true);
      }
    });
  }

  addLabel(part, frame, text, color, whenBehind) {
    const element = document.createElement("div");
    element.className = whenBehind ? "label label-behind" : "label";
    element.textContent = text;
    element.style.borderColor = color;
    element.hidden = true;
    this.labelLayer.append(element);
    const where = frame.anchor.clone().addScaledVector(frame.up, frame.radius + LABEL_LIFT_M)
      .addScaledVector(frame.normal, 0.006);
    this.labels.push({ element, part, frame, where, whenBehind });
  }

  /** Whether there is anything to draw on the device (a product with overlays on its parts). */
  hasContent() {
    return this.product !== null && (this.items.length > 0 || this.labels.length > 0);
  }

  /**
   * Draw at `now` (seconds) with `pose` (or none) at `opacity` (0..1). Returns true when overlays were drawn
   * and every part they are on faces the camera.
   */
  draw(pose, opacity, now) {
    const visible = pose !== null && opacity > 0 && this.intrinsics !== null && this.product !== null;
    if (!visible || (this.items.length === 0 && this.labels.length === 0)) {
      if (!this.cleared) {
        this.renderer.clear();
        for (const label of this.labels) label.element.hidden = true;
        this.cleared = true;
      }
      return false;
    }
    this.cleared = false;
    const eye = v3(cameraPosition(pose));
    const moved = new Map(); // part -> its transform now
    const transformOf = (name) => {
      if (!moved.has(name)) moved.set(name, partTransform(this.parts, name, this.states));
      return moved.get(name);
    };
    const facesAway = (item) => {
      const m = transformOf(item.part);
      const normal = item.frame.normal.clone().transformDirection(m);
      return normal.dot(eye.clone().sub(item.frame.anchor.clone().applyMatrix4(m))) <= 0;
    };
    const allFacing = [...this.items, ...this.labels].every((item) => !facesAway(item));
    for (const item of this.items) {
      item.update(now);
      item.holder.matrix.copy(transformOf(item.part));
      item.holder.matrixWorldNeedsUpdate = true;
      const alpha = opacity * (facesAway(item) ? BEHIND_ALPHA : 1);
      for (const m of item.materials) m.opacity = m.userData.alpha * alpha;
    }
    this.root.matrix.copy(poseMatrix(pose));
    this.root.matrixWorldNeedsUpdate = true;
    this.renderer.render(this.scene, this.camera);
    this.placeLabels(pose, opacity, facesAway, transformOf);
    return allFacing;
  }

  placeLabels(pose, opacity, facesAway, transformOf) {
    const cam = this.intrinsics;
    const boxWidth = this.canvas.clientWidth;
    const boxHeight = this.canvas.clientHeight;
    // The canvas is laid out with `object-fit: contain`, like the video under it.
    const scale = Math.min(boxWidth / cam.width, boxHeight / cam.height);
    const left = this.canvas.offsetLeft + (boxWidth - cam.width * scale) / 2;
    const top = this.canvas.offsetTop + (boxHeight - cam.height * scale) / 2;
    const { R, t } = pose;
    for (const label of this.labels) {
      const p = label.where.clone().applyMatrix4(transformOf(label.part));
      const z = R[6] * p.x + R[7] * p.y + R[8] * p.z + t[2];
      const show = label.whenBehind === facesAway(label) && z > NEAR_M;
      label.element.hidden = !show;
      if (!show) continue;
      const u = (cam.fx * (R[0] * p.x + R[1] * p.y + R[2] * p.z + t[0])) / z + cam.cx;
      const v = (cam.fy * (R[3] * p.x + R[4] * p.y + R[5] * p.z + t[1])) / z + cam.cy;
      const x = left + (u + 0.5) * scale;
      const y = top + (v + 0.5) * scale;
      label.element.style.opacity = String(opacity);
      label.element.style.transform = `translate(${x.toFixed(1)}px, ${y.toFixed(1)}px) translate(-50%, -100%)`;
    }
  }
}

/** A catalog text for `locale`, falling back de-AT -> de -> en (product_models/catalog.py `localized`). */
export function localized(text, locale) {
  let tag = locale;
  while (tag) {
    if (text && tag in text) return text[tag];
    tag = tag.includes("-") ? tag.slice(0, tag.lastIndexOf("-")) : "";
  }
  return (text && (text.en || Object.values(text)[0])) || "";
}
