// persam-video ui: the page. It keeps no state of its own beyond what is shown: every action is a
// call to the JSON API (/api/...), whose answer is the session's state; the page redraws from it.
"use strict";

const $ = (id) => document.getElementById(id);
const canvas = $("canvas");
const context = canvas.getContext("2d");
let state = null;        // the last state the server sent
let frame = 0;           // the frame shown
let selected = null;     // the selected object's id
let dragStart = null;    // the box tool's first corner, in frame pixels
let picture = null;      // the shown frame (an Image)
let pictureKey = "";     // which frame and version `picture` is
let polling = null;

function show(text, kind = "error") {
  const box = $("message");
  box.textContent = text || "";
  box.className = kind;
  box.hidden = !text;
}

async function api(method, path, body) {
  const options = { method, headers: {} };
  if (body instanceof Blob) {
    options.body = body;
  } else if (body !== undefined) {
    options.body = JSON.stringify(body);
    options.headers["Content-Type"] = "application/json";
  }
  let response;
  try {
    response = await fetch(path, options);
  } catch (error) {
    throw new Error("the server cannot be reached (" + error.message + ")");
  }
  let data = null;
  try { data = await response.json(); } catch (error) { data = null; }
  if (!response.ok) throw new Error((data && data.error) || `${response.status} ${response.statusText}`);
  return data;
}

// Run an action; its answer (the new state) is applied, an error is shown in the page.
async function act(action, busyText) {
  if (busyText) show(busyText, "info");
  try {
    const answer = await action();
    if (answer) apply(answer);
    if (busyText) show("");
    return answer;
  } catch (error) {
    show(error.message);
    return null;
  }
}

function apply(next) {
  state = next;
  const server = state.server;
  $("model").textContent = `Model: ${server.model} (${server.method})` + (server.note ? ` — ${server.note}` : "");
  $("limit").textContent = `Uploads up to ${server.max_upload_mb} MB.`;
  $("preset").hidden = !server.preset;
  $("preset").textContent = server.preset ? `Open ${server.preset}` : "";
  const video = state.video;
  $("video-info").textContent = video
    ? `${video.name}: ${video.frames} frames, ${video.width}x${video.height}`
    : "No video loaded.";
  $("slider").max = video ? video.frames - 1 : 0;
  if (!video) frame = 0;
  frame = Math.min(frame, video ? video.frames - 1 : 0);
  $("slider").value = frame;
  const ids = state.objects.map((o) => o.id);
  if (!ids.includes(selected)) selected = ids.length ? ids[0] : null;
  drawObjects();
  drawTrack(state.track);
  draw();
}

function drawObjects() {
  const list = $("objects");
  list.replaceChildren();
  for (const object of state.objects) {
    const item = document.createElement("li");
    item.dataset.id = object.id;
    item.className = object.id === selected ? "selected" : "";
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = object.colour;
    const name = document.createElement("input");
    name.className = "name";
    name.value = object.name;
    name.setAttribute("aria-label", `name of object ${object.id}`);
    name.addEventListener("focus", () => select(object.id));
    name.addEventListener("change", () =>
      act(() => api("PATCH", `api/objects/${object.id}`, { name: name.value })));
    const note = document.createElement("span");
    note.className = "state";
    note.textContent = object.prompted ? `#${object.id}` : `#${object.id}, no click yet`;
    const remove = document.createElement("button");
    remove.className = "remove";
    remove.title = `remove ${object.name}`;
    remove.textContent = "✕";
    remove.addEventListener("click", (event) => {
      event.stopPropagation();
      act(() => api("DELETE", `api/objects/${object.id}`));
    });
    item.append(swatch, name, note, remove);
    item.addEventListener("click", () => select(object.id));
    list.append(item);
  }
}

function select(id) {
  selected = id;
  for (const item of $("objects").children) item.className = Number(item.dataset.id) === id ? "selected" : "";
}

function drawTrack(track) {
  const running = Boolean(track && track.state === "running");
  $("track").disabled = running;
  $("cancel").disabled = !running;
  for (const button of document.querySelectorAll("#downloads button")) button.disabled = running;
  const bar = $("progress");
  bar.max = track ? Math.max(track.total, 1) : 1;
  bar.value = track ? track.done : 0;
  let text = "Not tracked yet.";
  if (track) {
    const counts = `${track.done} of ${track.total} frames, ${track.seconds} s`;
    text = {
      running: `Tracking… ${counts}`,
      done: `Tracked: ${counts}.`,
      cancelled: `Cancelled after ${counts}.`,
      failed: `Track failed: ${track.message}`,
    }[track.state];
  }
  if (state && state.tracked && state.changed_from !== null && !running) {
    text += ` Corrected on frame ${state.changed_from}: press Track to re-run it.`;
  }
  $("track-status").textContent = text;
  if (running && !polling) polling = setInterval(poll, 300);
  if (!running && polling) { clearInterval(polling); polling = null; }
}

async function poll() {
  try {
    const answer = await api("GET", "api/track");
    const wasRunning = answer.track && answer.track.state === "running";
    if (!wasRunning) {
      clearInterval(polling);
      polling = null;
      await act(() => api("GET", "api/state"));
      if (answer.track && answer.track.state === "failed") show(`Track failed: ${answer.track.message}`);
      return;
    }
    drawTrack(answer.track);
    if (answer.version !== state.version) { state.version = answer.version; draw(); }
  } catch (error) {
    show(error.message);
  }
}

// The frame with its masks (drawn by the server) and this frame's clicks and boxes.
function draw() {
  $("frame-label").textContent = state && state.video ? `Frame ${frame} / ${state.video.frames - 1}` : "Frame –";
  if (!state || !state.video) {
    picture = null;
    pictureKey = "";
    fit();
    canvas.width = 640;
    canvas.height = 360;
    context.fillStyle = "#ccc";
    context.fillRect(0, 0, canvas.width, canvas.height);
    context.fillStyle = "#555";
    context.font = "20px system-ui, sans-serif";
    context.fillText("Load a video (step 1)", 20, 40);
    return;
  }
  const key = `${frame}:${state.version}`;
  if (key === pictureKey && picture && picture.complete) { paint(); return; }
  const image = new Image();
  image.onload = () => {
    if (`${frame}:${state.version}` !== key) return;  // a newer frame was asked for meanwhile
    picture = image;
    pictureKey = key;
    paint();
    canvas.dataset.shown = key;  // for tests and screen readers: which frame and version is drawn
  };
  image.onerror = () => show(`frame ${frame} could not be shown`);
  image.src = `api/frame/${frame}?v=${state.version}`;
}

// The canvas holds the frame at its own size (clicks are in frame pixels); on screen it is scaled
// to fill the view's width, and no taller than the window.
function fit() {
  if (!state || !state.video) { canvas.style.width = canvas.style.height = ""; return; }
  const { width, height } = state.video;
  const scale = Math.min($("view").clientWidth / width, Math.max(200, window.innerHeight - 90) / height);
  canvas.style.width = `${Math.floor(width * scale)}px`;
  canvas.style.height = `${Math.floor(height * scale)}px`;
}

window.addEventListener("resize", fit);

function paint(rubberBand) {
  const video = state.video;
  if (canvas.width !== video.width || canvas.height !== video.height) {
    canvas.width = video.width;
    canvas.height = video.height;
  }
  fit();
  if (picture) context.drawImage(picture, 0, 0, video.width, video.height);
  const marks = (state.marks || {})[String(frame)] || {};
  const radius = Math.max(3, Math.round(Math.max(video.width, video.height) / 120));
  for (const [id, mark] of Object.entries(marks)) {
    const object = state.objects.find((o) => o.id === Number(id));
    const colour = object ? object.colour : "#fff";
    if (mark.box) {
      context.strokeStyle = colour;
      context.lineWidth = Math.max(1, radius / 2);
      const [x0, y0, x1, y1] = mark.box;
      context.strokeRect(x0, y0, x1 - x0, y1 - y0);
    }
    for (const [x, y, label] of mark.points) {
      context.beginPath();
      context.arc(x, y, radius, 0, 2 * Math.PI);
      context.fillStyle = label ? "#2e7d32" : "#c62828";
      context.fill();
      context.lineWidth = Math.max(1, radius / 3);
      context.strokeStyle = "#fff";
      context.stroke();
    }
  }
  if (rubberBand) {
    context.setLineDash([6, 4]);
    context.strokeStyle = "#fff";
    context.lineWidth = 2;
    const [x0, y0, x1, y1] = rubberBand;
    context.strokeRect(x0, y0, x1 - x0, y1 - y0);
    context.setLineDash([]);
  }
}

function framePoint(event) {
  const r = canvas.getBoundingClientRect();
  return [(event.clientX - r.left) * canvas.width / r.width, (event.clientY - r.top) * canvas.height / r.height];
}

function tool() {
  return document.querySelector("input[name=tool]:checked").value;
}

canvas.addEventListener("mousedown", (event) => {
  if (tool() === "box" && state && state.video) dragStart = framePoint(event);
});

canvas.addEventListener("mousemove", (event) => {
  if (dragStart && picture) paint([...dragStart, ...framePoint(event)]);
});

canvas.addEventListener("mouseup", (event) => {
  const [x, y] = framePoint(event);
  if (tool() === "box") {
    const start = dragStart;
    dragStart = null;
    if (!start) { show("load a video first"); return; }
    act(() => api("POST", "api/box", { frame, object: selected, box: [...start, x, y] }), "SAM is decoding the box…");
  } else {
    act(() => api("POST", "api/click", { frame, object: selected, x, y, positive: tool() === "positive" }),
      "SAM is decoding the click…");
  }
});

function goTo(index) {
  if (!state || !state.video) return;
  frame = Math.max(0, Math.min(state.video.frames - 1, index));
  $("slider").value = frame;
  draw();
}

$("slider").addEventListener("input", () => goTo(Number($("slider").value)));
$("prev").addEventListener("click", () => goTo(frame - 1));
$("next").addEventListener("click", () => goTo(frame + 1));
document.addEventListener("keydown", (event) => {
  if (event.target.tagName === "INPUT" && event.target.type !== "range") return;
  if (event.key === "ArrowLeft") goTo(frame - 1);
  if (event.key === "ArrowRight") goTo(frame + 1);
});

$("file").addEventListener("change", async () => {
  const file = $("file").files[0];
  $("file").value = "";
  if (!file) return;
  const limit = state ? state.server.max_upload_mb : Infinity;
  if (file.size > limit * 1024 * 1024) {
    show(`${file.name} is larger than the upload limit of ${limit} MB`);
    return;
  }
  frame = 0;
  const loaded = await act(() => api("POST", `api/video?name=${encodeURIComponent(file.name)}`, file),
    `Loading ${file.name}…`);
  if (loaded) show(`${file.name} loaded: click inside an object on any frame.`, "info");
});

$("preset").addEventListener("click", () => {
  frame = 0;
  act(() => api("POST", "api/video/preset"), "Loading the video…");
});

$("add-object").addEventListener("click", async () => {
  const answer = await act(() => api("POST", "api/objects", {}));
  if (answer && answer.objects.length) select(answer.objects[answer.objects.length - 1].id);
});

$("track").addEventListener("click", () => act(() => api("POST", "api/track")));
$("cancel").addEventListener("click", () => act(() => api("POST", "api/track/cancel")));

for (const button of document.querySelectorAll("#downloads button")) {
  button.addEventListener("click", () => download(button.dataset.download, button.textContent));
}

async function download(kind, label) {
  show(`Preparing ${label}…`, "info");
  try {
    const response = await fetch(`api/download/${kind}`);
    if (!response.ok) {
      let data = null;
      try { data = await response.json(); } catch (error) { data = null; }
      throw new Error((data && data.error) || `${response.status} ${response.statusText}`);
    }
    const blob = await response.blob();
    const match = /filename="?([^";]+)"?/.exec(response.headers.get("Content-Disposition") || "");
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = match ? match[1] : kind;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 60000);
    show(`${label}: ${link.download}`, "info");
  } catch (error) {
    show(error.message);
  }
}

// The open page keeps its session alive (the server ends sessions it has not heard from).
setInterval(() => { if (!polling) api("GET", "api/state").catch((error) => show(error.message)); }, 20000);

act(() => api("GET", "api/state"));
