// persam-video ui: the frame on screen. The canvas holds the frame at its own size (so clicks are in
// frame pixels); it is placed in the stage with CSS at the fitted size times the zoom, moved by the pan.
// A screen point maps to a frame pixel through the canvas's box on screen, exact at any zoom. The clicks
// and boxes are drawn on a second canvas over the stage, at the screen's resolution, so they stay sharp.
"use strict";

const canvas = $("canvas");
const context = canvas.getContext("2d");
const marksCanvas = $("marks");
const marksContext = marksCanvas.getContext("2d");
const stage = $("stage");
const ZOOMS = [1, 1.5, 2, 3, 4, 6, 8, 12, 16];  // the zoom steps of the buttons, the keys and the wheel
let zoom = 1;
let pan = { x: 0, y: 0 };  // the canvas's top-left corner in the stage, CSS pixels
let view = "overlay";      // overlay, matte, cutout, removed or blurred: what the frame shows
let picture = null;        // the shown frame (an Image)
let pictureKey = "";       // which frame, version and view `picture` is
const cache = new Map();   // frames asked for ahead (playback), by key
let checkers = null;       // the cut-out view's background pattern
let rubberBand = null;     // the box being dragged, in frame pixels

function frameSize() {
  return state && state.video ? [state.video.width, state.video.height] : [canvas.width, canvas.height];
}

function fitScale() {
  const [width, height] = frameSize();
  return Math.min(stage.clientWidth / width, stage.clientHeight / height);
}

// Size and place the canvas for the zoom and pan (a frame smaller than the stage is centred).
function place() {
  const [width, height] = frameSize();
  const scale = fitScale() * zoom;
  const w = width * scale, h = height * scale;
  const sw = stage.clientWidth, sh = stage.clientHeight;
  pan.x = w <= sw ? (sw - w) / 2 : Math.min(0, Math.max(sw - w, pan.x));
  pan.y = h <= sh ? (sh - h) / 2 : Math.min(0, Math.max(sh - h, pan.y));
  Object.assign(canvas.style, { width: `${w}px`, height: `${h}px`, left: `${pan.x}px`, top: `${pan.y}px` });
  canvas.classList.toggle("pixels", zoom > 1 && scale >= 4);
  $("zoom-level").textContent = `${Math.round(zoom * 100)}%`;
  drawMarks();
}

// Zoom to `next`, keeping the frame pixel under the stage point (cx, cy) where it is (default: the centre).
function zoomTo(next, cx = stage.clientWidth / 2, cy = stage.clientHeight / 2) {
  const before = fitScale() * zoom;
  const u = (cx - pan.x) / before, v = (cy - pan.y) / before;
  zoom = Math.max(ZOOMS[0], Math.min(ZOOMS[ZOOMS.length - 1], next));
  const after = fitScale() * zoom;
  pan = { x: cx - u * after, y: cy - v * after };
  place();
}

// One zoom step in (+1) or out (-1) about a stage point.
function zoomStep(direction, cx, cy) {
  const bigger = ZOOMS.filter((z) => z > zoom + 1e-9);
  const smaller = ZOOMS.filter((z) => z < zoom - 1e-9);
  const next = direction > 0 ? (bigger[0] || zoom) : (smaller[smaller.length - 1] || zoom);
  zoomTo(next, cx, cy);
}

function panBy(dx, dy) {
  pan = { x: pan.x + dx, y: pan.y + dy };
  place();
}

// The frame pixel under a mouse event: through the canvas's box on screen.
function framePoint(event) {
  const r = canvas.getBoundingClientRect();
  const [width, height] = frameSize();
  return [(event.clientX - r.left) * width / r.width, (event.clientY - r.top) * height / r.height];
}

function stagePoint(event) {
  const r = stage.getBoundingClientRect();
  return [event.clientX - r.left, event.clientY - r.top];
}

function frameUrl(index) {
  return `api/frame/${index}?v=${state.version}&view=${view}`;
}

function frameKey(index) {
  return `${index}:${state.version}:${view}`;
}

// Ask for a frame ahead of time (playback), keeping a few.
function preload(index) {
  if (!state || !state.video || index >= state.video.frames || cache.has(frameKey(index))) return;
  const image = new Image();
  image.src = frameUrl(index);
  cache.set(frameKey(index), image);
  while (cache.size > 8) cache.delete(cache.keys().next().value);
}

// The frame with its masks (drawn by the server in the chosen view) and this frame's clicks and boxes.
function draw() {
  const video = state && state.video;
  $("frame-label").textContent = video ? `Frame ${frame} / ${video.frames - 1}` : "Frame –";
  if (!video) {
    picture = null;
    pictureKey = "";
    canvas.width = 640;
    canvas.height = 360;
    place();
    context.fillStyle = "#ccc";
    context.fillRect(0, 0, canvas.width, canvas.height);
    context.fillStyle = "#555";
    context.font = "20px system-ui, sans-serif";
    context.fillText("Load a video (step 1)", 20, 40);
    return;
  }
  const key = frameKey(frame);
  if (key === pictureKey && picture) { paint(); return; }
  const image = cache.get(key) || new Image();
  const shown = () => {
    if (frameKey(frame) !== key) return;  // a newer frame was asked for meanwhile
    picture = image;
    pictureKey = key;
    paint();
    canvas.dataset.view = view;
    canvas.dataset.shown = `${frame}:${state.version}`;  // for tests and screen readers: what is drawn
  };
  if (image.complete && image.naturalWidth) { shown(); return; }
  image.onload = shown;
  image.onerror = () => { if (frameKey(frame) === key) show(`frame ${frame} could not be shown`); };
  if (!image.src) image.src = frameUrl(frame);
}

function checkerPattern() {
  if (checkers) return checkers;
  const tile = document.createElement("canvas");
  tile.width = tile.height = 16;
  const c = tile.getContext("2d");
  c.fillStyle = "#bbb";
  c.fillRect(0, 0, 16, 16);
  c.fillStyle = "#eee";
  c.fillRect(0, 0, 8, 8);
  c.fillRect(8, 8, 8, 8);
  checkers = context.createPattern(tile, "repeat");
  return checkers;
}

function paint() {
  const video = state.video;
  if (canvas.width !== video.width || canvas.height !== video.height) {
    canvas.width = video.width;
    canvas.height = video.height;
  }
  context.clearRect(0, 0, video.width, video.height);
  if (view === "cutout") {
    context.fillStyle = checkerPattern();
    context.fillRect(0, 0, video.width, video.height);
  }
  if (picture) context.drawImage(picture, 0, 0, video.width, video.height);
  place();
}

// This frame's clicks (green: positive, red: negative) and boxes, and the box being dragged.
function drawMarks() {
  const ratio = window.devicePixelRatio || 1;
  const w = stage.clientWidth, h = stage.clientHeight;
  if (marksCanvas.width !== Math.round(w * ratio) || marksCanvas.height !== Math.round(h * ratio)) {
    marksCanvas.width = Math.round(w * ratio);
    marksCanvas.height = Math.round(h * ratio);
  }
  const c = marksContext;
  c.setTransform(ratio, 0, 0, ratio, 0, 0);
  c.clearRect(0, 0, w, h);
  if (!state || !state.video) return;
  const scale = fitScale() * zoom;
  const at = (x, y) => [pan.x + x * scale, pan.y + y * scale];
  const marks = (state.marks || {})[String(frame)] || {};
  for (const [id, mark] of Object.entries(marks)) {
    const object = state.objects.find((o) => o.id === Number(id));
    if (mark.box) {
      const [x0, y0] = at(mark.box[0], mark.box[1]);
      const [x1, y1] = at(mark.box[2], mark.box[3]);
      c.strokeStyle = object ? object.colour : "#fff";
      c.lineWidth = 2;
      c.strokeRect(x0, y0, x1 - x0, y1 - y0);
    }
    for (const [x, y, label] of mark.points) {
      const [sx, sy] = at(x, y);
      c.beginPath();
      c.arc(sx, sy, 5, 0, 2 * Math.PI);
      c.fillStyle = label ? "#2e7d32" : "#c62828";
      c.fill();
      c.lineWidth = 1.5;
      c.strokeStyle = "#fff";
      c.stroke();
    }
  }
  if (rubberBand) {
    const [x0, y0] = at(rubberBand[0], rubberBand[1]);
    const [x1, y1] = at(rubberBand[2], rubberBand[3]);
    c.setLineDash([6, 4]);
    c.strokeStyle = "#fff";
    c.lineWidth = 2;
    c.strokeRect(x0, y0, x1 - x0, y1 - y0);
    c.setLineDash([]);
  }
}

function setView(next) {
  view = next;
  for (const input of document.querySelectorAll("input[name=view]")) input.checked = input.value === view;
  draw();
}

for (const input of document.querySelectorAll("input[name=view]")) {
  input.addEventListener("change", () => setView(input.value));
}

$("zoom-in").addEventListener("click", () => zoomStep(1));
$("zoom-out").addEventListener("click", () => zoomStep(-1));
$("zoom-fit").addEventListener("click", () => zoomTo(1));
stage.addEventListener("wheel", (event) => {
  event.preventDefault();
  if (!state || !state.video || event.deltaY === 0) return;
  zoomStep(event.deltaY < 0 ? 1 : -1, ...stagePoint(event));
}, { passive: false });
window.addEventListener("resize", place);
