// medactive labelling page: one pending image at a time, labelled with a click or a number key.
// The token lives in sessionStorage and goes in an Authorization header; images are fetched with
// it and shown through a canvas, where the window (level/width) is applied to the pixels.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  token: sessionStorage.getItem("medactive-token") || "",
  project: null,
  history: [],      // keys of items shown, in order
  pos: -1,          // index in history of the item on screen
  item: null,       // the item on screen
  review: false,    // offering skipped images instead of pending ones
  pixels: null,     // ImageData of the image as served (before windowing)
  busy: false,
  recheck: null,    // timer asking again when the leases of others run out
  adj: null,        // a mask disagreement on screen: {key, width, height, source, masks}
  // segmentation: the drawing layer of the item on screen, one class index per image pixel
  mask: null,       // {width, height, data: Uint8Array(height * width)}, row-major
  masks: new Map(), // item key -> its layer, so going back shows what was drawn this session
  paintClass: 1,
  stroke: null,     // last pointer position [x, y] in image pixels while drawing
  // annotation cost: active time per item (timing.js), fed with the page's events
  timer: null,
  // zoom and pan of the image: displayed = translate(tx, ty) scale(z) of the fitted image
  view: { z: 1, tx: 0, ty: 0, fitW: 0, fitH: 0 },
  pan: null,        // {x, y, tx, ty} at the start of a drag that pans
  spaceDown: false, // Space held: a left drag pans in the drawing mode too
};
// the clock of the active time: a test may inject window.__medactiveClock ({now()} in ms)
const clockNow = () => (window.__medactiveClock || performance).now();
// overlay colours of classes 1.. (background is transparent); cycled beyond the list
const COLOURS = [[255, 64, 64], [64, 200, 255], [255, 210, 0], [80, 220, 100], [200, 90, 255],
                 [255, 140, 0], [0, 230, 200], [255, 105, 180], [160, 160, 255]];
const classColour = (c) => COLOURS[(c - 1) % COLOURS.length];
const isSegmentation = () => state.project !== null && state.project.task === "segmentation";

async function api(method, path, body) {
  const options = { method, headers: { Authorization: "Bearer " + state.token } };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  return checked(await fetch(path, options));
}

// a server answer, or an Error with its detail and HTTP status (401: sign out)
async function checked(response) {
  if (response.status === 401) {
    signOut("Your token was not accepted; sign in again.");
    throw new Error("unauthorised");
  }
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail || detail; } catch (e) { /* not JSON */ }
    const error = new Error(detail);
    error.status = response.status;
    throw error;
  }
  return response;
}

// a refused write (409: someone else holds or labelled the image, or the label changed; 403: a
// correction of someone else's label): show the image as it is now, then say why
async function refused(error) {
  if (error.status !== 409 && error.status !== 403) throw error;
  if (state.item) await showKey(state.item.key);
  say(error.message, true);
}

function say(text, isError) {
  const el = $("message");
  el.textContent = text || "";
  el.className = isError ? "error" : "";
}

// the sign-out button: give this annotator's images back first, so nobody waits for them
async function logOut() {
  try { await api("POST", "/api/logout"); } catch (e) { /* signed out anyway */ }
  signOut("Signed out; your images are free for other annotators.");
}

function signOut(message) {
  clearTimeout(state.recheck);
  state.token = "";
  sessionStorage.removeItem("medactive-token");
  $("label-view").hidden = true;
  $("who").hidden = true;
  $("login-view").hidden = false;
  $("login-error").textContent = message || "";
}

async function signIn(token) {
  state.token = token;
  try {
    const who = await (await api("POST", "/api/login")).json();
    sessionStorage.setItem("medactive-token", token);
    $("annotator").textContent = who.annotator;
  } catch (e) {
    signOut(e.message === "unauthorised" ? "Unknown token." : e.message);
    return;
  }
  state.project = await (await api("GET", "/api/project")).json();
  state.timer = medactiveTiming.createActiveTimer({
    idleMs: 1000 * (state.project.idle_seconds || 60),
    visible: document.visibilityState !== "hidden" });
  buildClassButtons();
  buildDrawTools();
  $("login-view").hidden = true;
  $("who").hidden = false;
  $("label-view").hidden = false;
  $("mask-upload").hidden = state.project.task !== "segmentation" || isAdjudicator();
  await guarded(goNext);
}

function buildClassButtons() {
  const box = $("classes");
  box.textContent = "";
  if (state.project.task !== "classification") return;
  state.project.classes.forEach((name, i) => {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "class";
    b.dataset.value = String(i);
    b.title = i < 9 ? `Label ${name} (key ${i + 1})` : `Label ${name}`;
    const key = document.createElement("kbd");
    key.textContent = i < 9 ? String(i + 1) : "";
    b.append(key, " " + name);
    b.addEventListener("click", () => label(i));
    box.append(b);
  });
}

function buildDrawTools() {
  const box = $("draw-classes");
  box.textContent = "";
  $("draw-tools").hidden = !isSegmentation();
  $("canvas").classList.toggle("drawing", isSegmentation());
  if (!isSegmentation()) return;
  state.project.classes.forEach((name, i) => {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "class";
    b.dataset.value = String(i);
    b.title = i === 0 ? `Eraser: ${name} (key 0)` : `Draw ${name}` + (i < 10 ? ` (key ${i})` : "");
    const key = document.createElement("kbd");
    key.textContent = i < 10 ? String(i) : "";
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = i === 0 ? "transparent" : `rgb(${classColour(i).join(",")})`;
    b.append(key, " ", swatch, " " + (i === 0 ? `${name} (eraser)` : name));
    b.addEventListener("click", () => pickClass(i));
    box.append(b);
  });
  pickClass(Math.min(1, state.project.classes.length - 1));
}

function pickClass(value) {
  state.paintClass = value;
  document.querySelectorAll("#draw-classes .class").forEach((b) => {
    b.classList.toggle("chosen", b.dataset.value === String(value));
  });
}

// the layer of an item: kept per key for this session, fresh (all background) otherwise;
// returns whether it is fresh (then a proposed mask may fill it)
function startLayer(key, width, height) {
  let layer = state.masks.get(key);
  const fresh = !layer || layer.width !== width || layer.height !== height;
  if (fresh) {
    layer = { width, height, data: new Uint8Array(width * height), edits: 0 };
    state.masks.set(key, layer);
  }
  state.mask = layer;
  const overlay = $("overlay");
  overlay.width = width;
  overlay.height = height;
  overlay.hidden = false;
  renderOverlay(0, 0, width, height);
  return fresh;
}

// segmentation: the model's mask for the item fills its fresh layer, to correct, not redraw
async function fillProposedMask(item) {
  const data = await (await api("GET", `/api/proposal/${item.key}`)).json();
  const m = state.mask;
  if (state.item !== item || !m || data.width !== m.width || data.height !== m.height) return;
  const bytes = atob(data.values);
  for (let i = 0; i < m.data.length; i++) m.data[i] = bytes.charCodeAt(i);
  renderOverlay(0, 0, m.width, m.height);
}

// repaint the overlay's rectangle [x0, x1) x [y0, y1) from the class layer
function renderOverlay(x0, y0, x1, y1) {
  const m = state.mask;
  const w = x1 - x0, h = y1 - y0;
  if (!m || w <= 0 || h <= 0) return;
  const img = new ImageData(w, h);
  const d = img.data;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const c = m.data[(y0 + y) * m.width + x0 + x];
      if (c === 0) continue;  // stays transparent
      const [r, g, b] = classColour(c);
      const i = 4 * (y * w + x);
      d[i] = r; d[i + 1] = g; d[i + 2] = b; d[i + 3] = 255;
    }
  }
  $("overlay").getContext("2d").putImageData(img, x0, y0);
}

// display coordinates of a pointer event -> continuous image coordinates (pixel i spans [i, i+1))
function toImage(event) {
  const rect = $("canvas").getBoundingClientRect();
  return [(event.clientX - rect.left) * (state.mask.width / rect.width),
          (event.clientY - rect.top) * (state.mask.height / rect.height)];
}

// a disc of diameter `size` pixels at (cx, cy): every pixel whose centre lies within size / 2,
// and always the pixel under the point (so size 1 is exactly that pixel). Integer class values
// written into the layer: no antialiasing, the saved mask holds only class indices.
function stamp(cx, cy, size, value, box) {
  const m = state.mask;
  const r = size / 2;
  const px = Math.floor(cx), py = Math.floor(cy);
  const xa = Math.max(0, Math.floor(cx - r)), xb = Math.min(m.width - 1, Math.ceil(cx + r));
  const ya = Math.max(0, Math.floor(cy - r)), yb = Math.min(m.height - 1, Math.ceil(cy + r));
  for (let y = ya; y <= yb; y++) {
    for (let x = xa; x <= xb; x++) {
      const dx = x + 0.5 - cx, dy = y + 0.5 - cy;
      if (dx * dx + dy * dy <= r * r || (x === px && y === py)) {
        m.data[y * m.width + x] = value;
        box[0] = Math.min(box[0], x); box[1] = Math.min(box[1], y);
        box[2] = Math.max(box[2], x + 1); box[3] = Math.max(box[3], y + 1);
      }
    }
  }
}

// stamps every half pixel from a to b, so a fast drag leaves no gaps
function paintSegment(a, b) {
  const size = Number($("brush").value);
  const steps = Math.max(1, Math.ceil(2 * Math.max(Math.abs(b[0] - a[0]), Math.abs(b[1] - a[1]))));
  const box = [Infinity, Infinity, -Infinity, -Infinity];
  for (let i = 0; i <= steps; i++) {
    const t = i / steps;
    stamp(a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1]), size, state.paintClass, box);
  }
  if (box[2] > box[0]) renderOverlay(box[0], box[1], box[2], box[3]);
}

function onPointerDown(event) {
  if (state.item && (event.button === 1 || (event.button === 0 &&
                                            (state.spaceDown || !isSegmentation())))) {
    return startPan(event);  // middle drag, Space + drag, or any drag when not drawing
  }
  if (!isSegmentation() || !state.mask || !state.item || event.button !== 0) return;
  event.preventDefault();
  $("canvas").setPointerCapture(event.pointerId);
  state.mask.edits += 1;  // one stroke (a click included) = one edit
  state.stroke = toImage(event);
  paintSegment(state.stroke, state.stroke);
}

function onPointerMove(event) {
  if (state.pan !== null) return movePan(event);
  if (state.stroke === null) return;
  const p = toImage(event);
  paintSegment(state.stroke, p);
  state.stroke = p;
}

function onPointerUp() {
  state.stroke = null;
  state.pan = null;
}

// -- zoom and pan: #stage (image + drawing layer) is transformed inside the clipping #viewport;
// pointer positions map to image pixels through the transformed box (toImage), so drawing
// stays on the image's pixels at any zoom
const MAX_ZOOM = 32;

// the displayed size at zoom 1: the whole image in a square of side min(70vh, 60vw)
function fitView(width, height) {
  const side = Math.min(0.7 * window.innerHeight, 0.6 * window.innerWidth);
  const scale = side / Math.max(width, height);
  const v = state.view;
  v.fitW = width * scale;
  v.fitH = height * scale;
  const canvas = $("canvas");
  canvas.style.width = `${v.fitW}px`;
  canvas.style.height = `${v.fitH}px`;
  $("viewport").style.width = `${v.fitW}px`;
  $("viewport").style.height = `${v.fitH}px`;
  resetView();
}

function applyView() {
  const v = state.view;
  v.tx = Math.min(0, Math.max(v.fitW * (1 - v.z), v.tx));  // never leave empty space inside
  v.ty = Math.min(0, Math.max(v.fitH * (1 - v.z), v.ty));
  $("stage").style.transform = `translate(${v.tx}px, ${v.ty}px) scale(${v.z})`;
  $("zoom-level").textContent = `${Math.round(100 * v.z)} %`;
}

function resetView() {
  Object.assign(state.view, { z: 1, tx: 0, ty: 0 });
  applyView();
}

// zoom by `factor` keeping the point (px, py) of the viewport (CSS pixels) where it is
function zoomAt(factor, px, py) {
  const v = state.view;
  const z = Math.min(MAX_ZOOM, Math.max(1, v.z * factor));
  v.tx = px - ((px - v.tx) / v.z) * z;
  v.ty = py - ((py - v.ty) / v.z) * z;
  v.z = z;
  applyView();
}

function zoomCentre(factor) {
  zoomAt(factor, state.view.fitW / 2, state.view.fitH / 2);
}

// pan by a fraction of the view (keys I J K L)
function panBy(fx, fy) {
  state.view.tx -= fx * state.view.fitW;
  state.view.ty -= fy * state.view.fitH;
  applyView();
}

function onWheel(event) {
  if (!state.item) return;
  event.preventDefault();
  const rect = $("viewport").getBoundingClientRect();
  zoomAt(Math.exp(-event.deltaY * 0.002), event.clientX - rect.left, event.clientY - rect.top);
}

function startPan(event) {
  // a left press keeps its default (it moves the focus off a slider, whose keys would take
  // the arrow keys); the middle button's default is the browser's autoscroll
  if (event.button === 1) event.preventDefault();
  $("canvas").setPointerCapture(event.pointerId);
  state.pan = { x: event.clientX, y: event.clientY, tx: state.view.tx, ty: state.view.ty };
}

function movePan(event) {
  state.view.tx = state.pan.tx + event.clientX - state.pan.x;
  state.view.ty = state.pan.ty + event.clientY - state.pan.y;
  applyView();
}

function clearLayer() {
  if (!state.mask) return;
  state.mask.edits += 1;
  state.mask.data.fill(0);
  renderOverlay(0, 0, state.mask.width, state.mask.height);
}

// -- a greyscale PNG of the layer: pixel values are the class indices. A canvas' toBlob would
// give an RGBA PNG, which the server's mask check (one channel, values 0..C-1) refuses.
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(bytes) {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function pngChunk(type, data) {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

async function greyPng(values, width, height) {
  const raw = new Uint8Array((width + 1) * height);  // each row: filter byte 0 (none), pixels
  for (let y = 0; y < height; y++) {
    raw.set(values.subarray(y * width, (y + 1) * width), y * (width + 1) + 1);
  }
  const zlib = new Blob([raw]).stream().pipeThrough(new CompressionStream("deflate"));
  const idat = new Uint8Array(await new Response(zlib).arrayBuffer());
  const header = new Uint8Array(13);  // width, height, bit depth 8, colour type 0 (grey)
  const view = new DataView(header.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  header[8] = 8;
  const signature = new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]);
  return new Blob([signature, pngChunk("IHDR", header), pngChunk("IDAT", idat),
                   pngChunk("IEND", new Uint8Array(0))], { type: "image/png" });
}

function showProgress(p) {
  if (!p) return;
  const done = p.labelled + p.skipped;
  const total = p.batch_size || 0;
  $("progress").textContent = total
    ? `Round ${p.round}: ${p.labelled} labelled, ${p.skipped} skipped, ` +
      `${p.pending} pending of ${total}`
    : "No batch yet: ask for one with `medactive project query`.";
  $("progress-fill").style.width = total ? `${(100 * done) / total}%` : "0";
}

async function goNext() {
  if (state.pos < state.history.length - 1) {  // reviewing: step forward through history first
    return showKey(state.history[++state.pos]);
  }
  const path = "/api/next" + (state.review ? "?review_skipped=true" : "");
  const data = await (await api("POST", path)).json();
  showProgress(data.progress);
  if (data.key === undefined) {  // nothing free: done, or images held by others
    if (state.review) {
      state.review = false;
      return goNext();
    }
    return data.done ? showDone(data.progress) : showWaiting(data);
  }
  if (state.history[state.history.length - 1] !== data.key) state.history.push(data.key);
  state.pos = state.history.length - 1;
  await show(data);
}

async function showKey(key) {
  let data = await (await api("GET", `/api/item/${key}`)).json();
  if (isAdjudicator()) {
    // back to a decided disagreement: no lease to take, the readings come with /api/next
  } else if (data.status !== "labelled" && data.label === null && !data.held_by_other) {
    // an image not labelled yet (one skipped): take its lease, so that a label can be given
    try {
      data = await (await api("POST", "/api/lease", { key })).json();
    } catch (e) {
      if (e.status !== 409) throw e;
      data.held_by_other = true;  // taken meanwhile
    }
  }
  showProgress(data.progress);
  await show(data);
}

function clearItem() {
  clearTimeout(state.recheck);
  if (state.timer) state.timer.show(null, clockNow());
  state.item = null;
  state.mask = null;
  state.stroke = null;
  $("canvas").hidden = true;
  $("overlay").hidden = true;
  $("done").hidden = false;
  $("sample-id").textContent = "";
  $("sample-info").textContent = "";
  $("current-label").textContent = "";
  $("why").textContent = "";
  $("proposal").hidden = true;
  $("readings").hidden = true;
  $("mask-readings").hidden = true;
  state.adj = null;
  markLabel(null);
}

// double reading: an annotator marked adjudicator is offered the readers' disagreements
const isAdjudicator = () => state.project !== null && !!state.project.adjudicator;

// the readers' labels of a disagreement, each reader's class marked on its button
function showReadings(item) {
  const list = $("readings-list");
  list.textContent = "";
  const read = new Map();
  (item.readings || []).forEach((r) => {
    const li = document.createElement("li");
    li.textContent = `${r.annotator}: ${r.label !== undefined ? r.label : "a mask"}`;
    list.append(li);
    if (r.label !== undefined) read.set(r.label, (read.get(r.label) || []).concat(r.annotator));
  });
  $("readings").hidden = !item.adjudicate || isSegmentation();
  document.querySelectorAll("#classes .class").forEach((b) => {
    const name = state.project.classes[Number(b.dataset.value)];
    b.classList.toggle("read", !!item.adjudicate && read.has(name));
    b.title = item.adjudicate && read.has(name) ? `read as ${name} by ${read.get(name).join(", ")}`
      : b.title.replace(/^read as .*$/, `Label ${name}`);
  });
}

// -- adjudicating a mask disagreement: each reader's mask (and their per-pixel vote) can be
// shown in the drawing layer, one at a time; Keep stores a reader's mask as it is (method
// "reader"), Save mask stores the layer as corrected (method "edited", with where it started)
async function loadReadingMasks(item) {
  const data = await (await api("GET", `/api/adjudicate/${item.key}/masks`)).json();
  if (state.item !== item) return;
  const bytes = (b64) => Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
  state.adj = { key: item.key, width: data.width, height: data.height, source: "vote",
                masks: new Map(data.readers.map((r) => [r.annotator, bytes(r.values)])) };
  state.adj.masks.set("vote", bytes(data.vote));
  $("adj-dice").textContent = data.pairs
    .map((p) => `Dice ${p.readers.join("–")} ${p.dice.toFixed(3)}`).join(", ");
  const list = $("mask-readings-list");
  list.textContent = "";
  const row = (source, name, keep) => {
    const li = document.createElement("li");
    const label = document.createElement("span");
    label.className = keep ? "source reader" : "source vote";
    label.textContent = name;
    const show = document.createElement("button");
    show.type = "button";
    show.className = "show-mask";
    show.dataset.source = source;
    show.textContent = "Show";
    show.title = `Show ${source === "vote" ? "the readers' vote" : source + "'s mask"} in ` +
      "the drawing layer, to keep or to correct";
    show.addEventListener("click", () => showSource(source));
    li.append(label, show);
    if (keep) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "keep-mask";
      b.dataset.reader = source;
      b.textContent = "Keep";
      b.title = `Train on ${source}'s mask as it is`;
      b.addEventListener("click", () => keepMask(source));
      li.append(b);
    }
    list.append(li);
  };
  data.readers.forEach((r) => row(r.annotator, r.annotator, true));
  row("vote", "per-pixel vote", false);
  $("mask-readings").hidden = false;
  showSource("vote");  // the starting point: where both readers agree
}

function showSource(source) {
  const adj = state.adj, m = state.mask;
  if (!adj || !m || m.width !== adj.width || m.height !== adj.height) return;
  m.data.set(adj.masks.get(source));
  m.edits = 0;
  adj.source = source;
  renderOverlay(0, 0, m.width, m.height);
  $("adj-source").textContent = "Drawing layer: " +
    (source === "vote" ? "the readers' per-pixel vote" : `${source}'s mask`);
  document.querySelectorAll("#mask-readings .show-mask").forEach((b) => {
    b.classList.toggle("chosen", b.dataset.source === source);
  });
}

function keepMask(reader) {
  return guarded(async () => {
    if (!state.item || !state.adj) return;
    try {
      await api("POST", "/api/adjudicate", { key: state.item.key, reader });
    } catch (e) {
      return refused(e);
    }
    await goNext();
  });
}

// Save mask in the adjudicator's mode: a reader's mask shown and not changed is that reader's
// reading kept; anything else is the adjudicator's edit, sent with where it started
async function saveAdjudicatedMask() {
  const m = state.mask, adj = state.adj;
  try {
    if (m.edits === 0 && adj.source !== "vote") {
      await api("POST", "/api/adjudicate", { key: state.item.key, reader: adj.source });
    } else {
      const params = new URLSearchParams({ start: adj.source });
      await checked(await fetch(`/api/adjudicate/${state.item.key}/mask?${params}`, {
        method: "POST",
        headers: { Authorization: "Bearer " + state.token, "X-Filename": "adjudicated.png",
                   "Content-Type": "application/octet-stream" },
        body: await greyPng(m.data, m.width, m.height),
      }));
    }
  } catch (e) {
    return refused(e);
  }
  await goNext();
}

// why the item was chosen, and the model's proposal as a one-key (Enter) choice
function showProposal(item) {
  const why = item.why;
  $("why").textContent = why && why.strategy
    ? `Chosen by ${why.strategy}: rank ${why.rank + 1} of round ${why.round}` +
      (why.score === null ? "" : `, score ${why.score.toPrecision(4)}`)
    : "";
  const p = item.adjudicate ? null : item.proposal;  // the adjudicator decides between readers
  $("proposal").hidden = !p;
  document.querySelectorAll("#classes .class").forEach((b) => {
    b.classList.toggle("proposed", !!p && p.value !== undefined &&
                                   b.dataset.value === String(p.value));
  });
  if (!p) return;
  if (p.value !== undefined) {
    $("proposal-class").textContent = p.class;
    $("proposal-p").textContent = `(probability ${p.probability.toFixed(2)})`;
  } else {
    $("proposal-class").textContent = "the mask drawn on the image";
    $("proposal-p").textContent = "(correct it, or save it as it is)";
  }
  $("proposal").title = p.model +
    (p.temperature !== 1 ? `, temperature ${p.temperature.toFixed(2)}` : "");
}

// Enter: the proposal as it is (classification: its class; segmentation: the layer as drawn,
// which the server records as "accepted" when it still is the proposed mask)
function accept() {
  if (state.adj) return saveDrawnMask();  // adjudicating masks: save the layer
  const p = state.item && state.item.proposal;
  if (!p) return;
  if (p.value !== undefined) return label(p.value);
  return saveDrawnMask();
}

function showDone(p) {
  clearItem();
  $("done").textContent = isAdjudicator()
    ? "No disagreement is waiting for a decision. Thank you!"
    : "Nothing left to label in this batch. Thank you!";
  $("review-skipped").hidden = !(p && p.skipped_all > 0);
  $("review-skipped").textContent = `Review ${p ? p.skipped_all : 0} skipped image(s)`;
}

// the rest of the batch is leased to other annotators (perhaps a tab closed without signing
// out): say how many and until when, and ask again when the first lease runs out
function showWaiting(data) {
  clearItem();
  const until = new Date(data.next_free_at);
  $("done").textContent = `${data.held} image(s) of this batch are held by other annotators ` +
    `until ${until.toLocaleTimeString()} at the latest (sooner if they label them or sign ` +
    "out). Press Next (→) to check again.";
  $("review-skipped").hidden = true;
  const wait = Math.max(1000, until.getTime() - Date.now() + 1000);
  state.recheck = setTimeout(() => { if (state.item === null) guarded(goNext); },
                             Math.min(wait, 2147483647));
}

async function show(item) {
  // fetch and decode the image first: the page switches to the new item only when it can show
  // it, so a key pressed meanwhile never labels an image the annotator has not seen
  const blob = await (await api("GET", `/api/image/${item.key}`)).blob();
  const bitmap = await createImageBitmap(blob);
  const off = document.createElement("canvas");
  off.width = bitmap.width;
  off.height = bitmap.height;
  const ctx = off.getContext("2d");
  ctx.drawImage(bitmap, 0, 0);
  state.pixels = ctx.getImageData(0, 0, bitmap.width, bitmap.height);
  clearTimeout(state.recheck);
  state.item = item;
  state.timer.show(item.key, clockNow());
  $("done").hidden = true;
  $("review-skipped").hidden = true;
  const canvas = $("canvas");
  canvas.hidden = false;
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  fitView(bitmap.width, bitmap.height);  // each image starts fitted (F: back to this)
  canvas.dataset.key = String(item.key);
  canvas.dataset.sampleId = item.id;
  if (item.box) canvas.dataset.box = `${item.box.x0},${item.box.y0},${item.box.x1},${item.box.y1}`;
  else delete canvas.dataset.box;
  state.stroke = null;
  const fresh = isSegmentation() && startLayer(item.key, bitmap.width, bitmap.height);
  draw();
  if (isSegmentation() && isAdjudicator() && item.adjudicate) await loadReadingMasks(item);
  else if (fresh && item.proposal && item.label_seq === null) await fillProposedMask(item);
  showProposal(item);
  showReadings(item);
  const score = item.score === null ? "" : `, score ${item.score.toPrecision(4)}`;
  const patch = item.box
    ? `; outline the patch x ${item.box.x0}-${item.box.x1 - 1}, y ${item.box.y0}-` +
      `${item.box.y1 - 1} (draw in it and save, or upload a ` +
      `${item.box.x1 - item.box.x0}x${item.box.y1 - item.box.y0} mask or a whole-slice mask: ` +
      "only the patch is kept)"
    : "";
  // round, rank and score are in the "why" line when the batch's strategy is known
  $("sample-info").textContent = item.why && item.why.strategy
    ? patch.replace(/^; /, "") : `round ${item.round}, rank ${item.rank + 1}${score}${patch}`;
  const cls = state.project.classes;
  $("current-label").textContent = item.label !== null
    ? `Labelled ${cls[item.label]} by ${item.labelled_by}`
    : item.mask ? `Mask uploaded by ${item.labelled_by}`
      : (item.status === "skipped" ? "Skipped" : "");
  markLabel(item.label);
  say(item.held_by_other ? "Another annotator is working on this image." : "");
  $("sample-id").textContent = item.id;
}

function markLabel(value) {
  document.querySelectorAll("#classes .class").forEach((b) => {
    b.classList.toggle("chosen", value !== null && b.dataset.value === String(value));
  });
}

function draw() {
  if (!state.pixels) return;
  const level = Number($("level").value);
  const width = Number($("width").value);
  const lo = level - width / 2;
  const scale = 255 / width;
  const src = state.pixels.data;
  const out = new ImageData(state.pixels.width, state.pixels.height);
  const dst = out.data;
  for (let i = 0; i < src.length; i += 4) {
    dst[i] = (src[i] - lo) * scale;         // Uint8ClampedArray clamps to 0..255
    dst[i + 1] = (src[i + 1] - lo) * scale;
    dst[i + 2] = (src[i + 2] - lo) * scale;
    dst[i + 3] = 255;
  }
  const ctx = $("canvas").getContext("2d");
  ctx.putImageData(out, 0, 0);
  const box = state.item && state.item.box;
  if (box) outlinePatch(ctx, box);
}

// region projects: outline the queried patch (x1, y1 exclusive) on the whole slice
function outlinePatch(ctx, box) {
  const line = Math.max(1, Math.round(Math.max(ctx.canvas.width, ctx.canvas.height) / 256));
  ctx.save();
  ctx.strokeStyle = "#ffd400";
  ctx.lineWidth = line;
  ctx.strokeRect(box.x0 + line / 2, box.y0 + line / 2,
                 Math.max(line, box.x1 - box.x0 - line), Math.max(line, box.y1 - box.y0 - line));
  ctx.restore();
}

function autoWindow() {
  if (!state.pixels) return;
  let lo = 255, hi = 0;
  const d = state.pixels.data;
  for (let i = 0; i < d.length; i += 4) {
    const v = (d[i] + d[i + 1] + d[i + 2]) / 3;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  $("width").value = String(Math.max(1, Math.round(hi - lo)));
  $("level").value = String(Math.round((hi + lo) / 2));
  draw();
}

function resetWindow() {
  $("level").value = "128";
  $("width").value = "255";
  draw();
}

async function guarded(fn) {
  if (state.busy) return;
  state.busy = true;
  try {
    await fn();
  } catch (e) {
    if (e.message !== "unauthorised") say(e.message, true);
  } finally {
    state.busy = false;
  }
}

// a label for the image on screen; changing the label shown is a correction that names it
// (`replaces`), so a label changed meanwhile is never overwritten unseen
function label(value) {
  return guarded(async () => {
    if (!state.item || state.project.task !== "classification") return;
    if (isAdjudicator()) return decide(value);
    const key = state.item.key;
    const body = { key, value, active_ms: state.timer.activeMs(key, clockNow()) };
    if (state.item.label_seq !== null) body.replaces = state.item.label_seq;
    let data;
    try {
      data = await (await api("POST", "/api/label", body)).json();
    } catch (e) {
      return refused(e);
    }
    state.timer.take(key, clockNow());
    showProgress(data.progress);
    markLabel(value);
    await goNext();
  });
}

// the adjudicator's decision: the class to train on (the readings are kept)
async function decide(value) {
  try {
    await api("POST", "/api/adjudicate", { key: state.item.key, value });
  } catch (e) {
    return refused(e);
  }
  markLabel(value);
  await goNext();
}

function skip() {
  return guarded(async () => {
    if (!state.item) return;
    await api("POST", "/api/skip", { key: state.item.key });
    await goNext();
  });
}

function back() {
  return guarded(async () => {
    if (state.item === null && state.history.length) {
      state.pos = state.history.length;  // from the "done" screen, back to the last image
    }
    if (state.pos <= 0) return say("This is the first image of this session.");
    await showKey(state.history[--state.pos]);
  });
}

function forward() {
  return guarded(goNext);
}

// post a mask file (a Blob) for the item on screen, with its active time and (a drawn mask)
// its edits; the server checks size, values and timing
async function postMask(body, filename, edits) {
  if (body.size > state.project.max_upload_bytes) {
    throw new Error(`The mask is larger than ${state.project.max_upload_bytes} bytes.`);
  }
  const key = state.item.key;
  const params = new URLSearchParams({ active_ms: String(state.timer.activeMs(key, clockNow())) });
  if (edits !== undefined) params.set("edits", String(edits));
  if (state.item.label_seq !== null) params.set("replaces", String(state.item.label_seq));
  await checked(await fetch(`/api/mask/${key}?${params}`, {
    method: "POST",
    headers: { Authorization: "Bearer " + state.token, "X-Filename": filename,
               "Content-Type": "application/octet-stream" },
    body,
  }));
  state.timer.take(key, clockNow());
}

function uploadMask() {
  return guarded(async () => {
    const file = $("mask-file").files[0];
    if (!state.item || !file) return say("Choose a mask file first.", true);
    try {
      await postMask(file, file.name);
    } catch (e) {
      return refused(e);
    }
    $("mask-file").value = "";
    await goNext();
  });
}

function saveDrawnMask() {
  return guarded(async () => {
    if (!state.item || !state.mask) return;
    if (isAdjudicator() && state.adj) return saveAdjudicatedMask();
    const m = state.mask;
    try {
      await postMask(await greyPng(m.data, m.width, m.height), "drawn.png", m.edits);
    } catch (e) {
      return refused(e);
    }
    m.edits = 0;  // a later correction counts its own edits
    await goNext();
  });
}

document.addEventListener("keydown", (event) => {
  const target = event.target;
  const typing = target.tagName === "INPUT" && target.type !== "range";
  if ($("label-view").hidden || typing || event.ctrlKey || event.metaKey || event.altKey) return;
  const k = event.key;
  if (target.type === "range" && k.startsWith("Arrow")) return;  // the slider's own keys
  if (isSegmentation() && /^[0-9]$/.test(k)) {
    if (Number(k) < state.project.classes.length) pickClass(Number(k));  // 0 = eraser
  } else if (/^[1-9]$/.test(k) && state.project && Number(k) <= state.project.classes.length) {
    label(Number(k) - 1);
  } else if (k === "Enter" && state.item && (state.item.proposal || state.adj)) {
    accept();
  } else if (k === "s" || k === "S") {
    skip();
  } else if (k === "ArrowLeft" || k === "Backspace") {
    back();
  } else if (k === "ArrowRight") {
    forward();
  } else if (k === "a" || k === "A") {
    autoWindow();
  } else if (k === "r" || k === "R") {
    resetWindow();
  } else if (k === "+" || k === "=") {
    zoomCentre(1.25);
  } else if (k === "-" || k === "_") {
    zoomCentre(0.8);
  } else if (k === "f" || k === "F") {
    resetView();
  } else if (/^[ijklIJKL]$/.test(k)) {  // pan: I up, J left, K down, L right
    const d = { i: [0, -0.2], j: [-0.2, 0], k: [0, 0.2], l: [0.2, 0] }[k.toLowerCase()];
    panBy(d[0], d[1]);
  } else if (k === " ") {
    state.spaceDown = true;  // Space + drag pans
  } else {
    return;
  }
  event.preventDefault();
});

window.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    signIn($("token").value.trim());
  });
  $("logout").addEventListener("click", logOut);
  $("skip").addEventListener("click", skip);
  $("back").addEventListener("click", back);
  $("forward").addEventListener("click", forward);
  $("level").addEventListener("input", draw);
  $("width").addEventListener("input", draw);
  $("auto-window").addEventListener("click", autoWindow);
  $("reset-window").addEventListener("click", resetWindow);
  $("mask-send").addEventListener("click", uploadMask);
  $("mask-save").addEventListener("click", saveDrawnMask);
  $("mask-clear").addEventListener("click", clearLayer);
  $("accept").addEventListener("click", accept);
  $("brush").addEventListener("input", () => { $("brush-size").textContent = $("brush").value; });
  $("canvas").addEventListener("pointerdown", onPointerDown);
  $("canvas").addEventListener("pointermove", onPointerMove);
  $("canvas").addEventListener("pointerup", onPointerUp);
  $("canvas").addEventListener("pointercancel", onPointerUp);
  $("viewport").addEventListener("wheel", onWheel, { passive: false });
  $("zoom-in").addEventListener("click", () => zoomCentre(1.25));
  $("zoom-out").addEventListener("click", () => zoomCentre(0.8));
  $("zoom-fit").addEventListener("click", resetView);
  document.addEventListener("keyup", (event) => {
    if (event.key === " ") { state.spaceDown = false; event.preventDefault(); }
  });
  window.addEventListener("resize", () => {
    if (state.item && state.pixels) fitView(state.pixels.width, state.pixels.height);
  });
  // annotation cost: inputs and visibility feed the active-time clock (capture: before the
  // key handler above saves a label)
  for (const type of ["keydown", "pointerdown", "pointermove", "wheel", "touchstart"]) {
    window.addEventListener(type, () => { if (state.timer) state.timer.input(clockNow()); },
                            { capture: true, passive: true });
  }
  document.addEventListener("visibilitychange", () => {
    if (state.timer) state.timer.visibility(document.visibilityState !== "hidden", clockNow());
  });
  $("review-skipped").addEventListener("click", () => {
    state.review = true;
    guarded(goNext);
  });
  // keep the lease on the image on screen while the page is open
  setInterval(() => { if (state.token && state.item) api("POST", "/api/renew").catch(() => {}); },
              60000);
  if (state.token) signIn(state.token);
});
