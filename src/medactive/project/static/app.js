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
};

async function api(method, path, body) {
  const options = { method, headers: { Authorization: "Bearer " + state.token } };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  if (response.status === 401) {
    signOut("Your token was not accepted; sign in again.");
    throw new Error("unauthorised");
  }
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail || detail; } catch (e) { /* not JSON */ }
    throw new Error(detail);
  }
  return response;
}

function say(text, isError) {
  const el = $("message");
  el.textContent = text || "";
  el.className = isError ? "error" : "";
}

function signOut(message) {
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
  buildClassButtons();
  $("login-view").hidden = true;
  $("who").hidden = false;
  $("label-view").hidden = false;
  $("mask-upload").hidden = state.project.task !== "segmentation";
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
  if (data.done) {
    if (state.review) {
      state.review = false;
      return goNext();
    }
    return showDone(data.progress);
  }
  if (state.history[state.history.length - 1] !== data.key) state.history.push(data.key);
  state.pos = state.history.length - 1;
  await show(data);
}

async function showKey(key) {
  const data = await (await api("GET", `/api/item/${key}`)).json();
  showProgress(data.progress);
  await show(data);
}

function showDone(p) {
  state.item = null;
  $("canvas").hidden = true;
  $("done").hidden = false;
  $("done").textContent = "Nothing left to label in this batch. Thank you!";
  $("sample-id").textContent = "";
  $("sample-info").textContent = "";
  $("current-label").textContent = "";
  $("review-skipped").hidden = !(p && p.skipped_all > 0);
  $("review-skipped").textContent = `Review ${p ? p.skipped_all : 0} skipped image(s)`;
  markLabel(null);
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
  state.item = item;
  $("done").hidden = true;
  $("review-skipped").hidden = true;
  const canvas = $("canvas");
  canvas.hidden = false;
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  canvas.dataset.key = String(item.key);
  canvas.dataset.sampleId = item.id;
  if (item.box) canvas.dataset.box = `${item.box.x0},${item.box.y0},${item.box.x1},${item.box.y1}`;
  else delete canvas.dataset.box;
  draw();
  const score = item.score === null ? "" : `, score ${item.score.toPrecision(4)}`;
  const patch = item.box
    ? `; outline the patch x ${item.box.x0}-${item.box.x1 - 1}, y ${item.box.y0}-` +
      `${item.box.y1 - 1} (upload a ${item.box.x1 - item.box.x0}x${item.box.y1 - item.box.y0} ` +
      "mask or a whole-slice mask: only the patch is kept)"
    : "";
  $("sample-info").textContent = `round ${item.round}, rank ${item.rank + 1}${score}${patch}`;
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

function label(value) {
  return guarded(async () => {
    if (!state.item || state.project.task !== "classification") return;
    const data = await (await api("POST", "/api/label", { key: state.item.key, value })).json();
    showProgress(data.progress);
    markLabel(value);
    await goNext();
  });
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

function uploadMask() {
  return guarded(async () => {
    const file = $("mask-file").files[0];
    if (!state.item || !file) return say("Choose a mask file first.", true);
    if (file.size > state.project.max_upload_bytes) {
      return say(`The file is larger than ${state.project.max_upload_bytes} bytes.`, true);
    }
    const response = await fetch(`/api/mask/${state.item.key}`, {
      method: "POST",
      headers: { Authorization: "Bearer " + state.token, "X-Filename": file.name,
                 "Content-Type": "application/octet-stream" },
      body: file,
    });
    if (!response.ok) {
      let detail = response.statusText;
      try { detail = (await response.json()).detail || detail; } catch (e) { /* not JSON */ }
      throw new Error(detail);
    }
    $("mask-file").value = "";
    await goNext();
  });
}

document.addEventListener("keydown", (event) => {
  const target = event.target;
  const typing = target.tagName === "INPUT" && target.type !== "range";
  if ($("label-view").hidden || typing || event.ctrlKey || event.metaKey || event.altKey) return;
  const k = event.key;
  if (target.type === "range" && k.startsWith("Arrow")) return;  // the slider's own keys
  if (/^[1-9]$/.test(k) && state.project && Number(k) <= state.project.classes.length) {
    label(Number(k) - 1);
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
  $("logout").addEventListener("click", () => signOut(""));
  $("skip").addEventListener("click", skip);
  $("back").addEventListener("click", back);
  $("forward").addEventListener("click", forward);
  $("level").addEventListener("input", draw);
  $("width").addEventListener("input", draw);
  $("auto-window").addEventListener("click", autoWindow);
  $("reset-window").addEventListener("click", resetWindow);
  $("mask-send").addEventListener("click", uploadMask);
  $("review-skipped").addEventListener("click", () => {
    state.review = true;
    guarded(goNext);
  });
  // keep the lease on the image on screen while the page is open
  setInterval(() => { if (state.token && state.item) api("POST", "/api/renew").catch(() => {}); },
              60000);
  if (state.token) signIn(state.token);
});
