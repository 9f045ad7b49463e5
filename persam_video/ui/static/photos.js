"use strict";
// The photo mode: a reference photo with its objects and clicks, undo, a batch, Run and its progress,
// corrections by clicking, a zip.
const $ = (id) => document.getElementById(id);
let version = 0; // bumps image URLs after every change
let selected = 1; // the object the next click marks
let colours = {}; // object id -> colour, as on the video page

function message(text, kind) {
  const box = $("message");
  box.hidden = !text;
  box.textContent = text || "";
  box.className = kind || "error";
}

async function call(method, url, body, raw) {
  const options = { method, headers: {} };
  if (raw) { options.body = raw; } else if (body !== undefined) {
    options.body = JSON.stringify(body);
    options.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(url, options);
  const data = await response.json().catch(() => ({ error: `${response.status} ${response.statusText}` }));
  if (!response.ok) { throw new Error(data.error || response.statusText); }
  return data;
}

// the image pixel under a click, whatever size the image is shown at
function imageXY(event, img, width, height) {
  const box = img.getBoundingClientRect();
  return { x: (event.clientX - box.left) * width / box.width, y: (event.clientY - box.top) * height / box.height };
}

function render(state) {
  version += 1;
  const ref = $("reference");
  ref.hidden = !state.reference;
  if (state.reference) {
    ref.src = `/api/photos/image/reference?v=${version}`;
    ref.dataset.width = state.reference.width;
    ref.dataset.height = state.reference.height;
  }
  drawObjects(state);
  $("undo").disabled = !state.can_undo;
  $("count").textContent = state.photos.length ? `${state.photos.length} photo(s).` : "No photos.";
  const grid = $("grid");
  grid.textContent = "";
  state.photos.forEach((photo, index) => {
    const figure = document.createElement("figure");
    figure.style.margin = "0";
    figure.className = "photo";
    const img = document.createElement("img");
    img.src = `/api/photos/image/${index}?v=${version}`;
    img.alt = photo.name;
    img.addEventListener("click", (event) => act(async () => {
      const point = imageXY(event, img, photo.width, photo.height);
      return call("POST", "/api/photos/correct",
        { index, x: point.x, y: point.y, positive: !event.shiftKey, object: selected });
    }, "Corrected: this photo is now a reference too."));
    const caption = document.createElement("figcaption");
    caption.className = "score";
    caption.append(photo.objects.length ? `${photo.name}:` : `${photo.name}: not run yet`);
    for (const object of photo.objects) {
      const line = document.createElement("div");
      const tag = document.createElement("span");
      tag.className = "tag";
      tag.style.background = colours[object.id];
      line.append(tag, `#${object.id} ${object.found ? "found" : "not found"}, score ${object.score}`
        + (object.corrected ? " (corrected)" : ""));
      caption.append(line);
    }
    figure.append(img, caption);
    grid.append(figure);
  });
}

function drawObjects(state) {
  const list = $("objects");
  list.replaceChildren();
  const ids = state.objects.map((o) => o.id);
  if (!ids.includes(selected)) selected = ids[0];
  for (const object of state.objects) {
    colours[object.id] = object.colour;
    const item = objectRow(object, selected);
    const note = document.createElement("span");
    note.className = "state";
    note.textContent = object.masked ? `#${object.id}, ${object.clicks} click(s)` : `#${object.id}, no click yet`;
    item.append(note);
    item.addEventListener("click", () => { selected = object.id; drawObjects(state); });
    list.append(item);
  }
}

async function act(work, done) {
  try {
    render(await work());
    message(done || "", "info");
  } catch (error) {
    message(error.message, "error");
  }
}

async function upload(url, file) {
  return call("POST", `${url}?name=${encodeURIComponent(file.name)}`, undefined, file);
}

$("reference-file").addEventListener("change", (event) => act(async () => {
  const file = event.target.files[0];
  return upload("/api/photos/reference", file);
}, "Now click the object on the reference photo."));

$("photo-files").addEventListener("change", (event) => act(async () => {
  let state = null;
  for (const file of event.target.files) { state = await upload("/api/photos/add", file); }
  return state;
}));

$("reference").addEventListener("click", (event) => act(async () => {
  const img = $("reference");
  const point = imageXY(event, img, Number(img.dataset.width), Number(img.dataset.height));
  return call("POST", "/api/photos/click", { x: point.x, y: point.y, positive: !event.shiftKey, object: selected });
}));

$("add-object").addEventListener("click", () => act(async () => {
  const state = await call("POST", "/api/photos/object");
  selected = state.objects[state.objects.length - 1].id;
  return state;
}, "Now click the new object on the reference photo."));

const undo = () => act(() => call("POST", "/api/photos/undo"));
$("undo").addEventListener("click", undo);
document.addEventListener("keydown", (event) => {
  if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "z" && event.target.tagName !== "INPUT") {
    event.preventDefault();
    undo();
  }
});

$("clear").addEventListener("click", () => act(() => call("POST", "/api/photos/clear")));

// while Run works, its progress ("fitting object 1: 40 %", "segmenting photo 3 of 10") every 300 ms
async function watch(running) {
  while (running.active) {
    const data = await call("GET", "/api/photos/progress").catch(() => ({ progress: "" }));
    if (running.active) $("status").textContent = data.progress || "running…";
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
}

$("run").addEventListener("click", () => act(async () => {
  $("status").textContent = "running…";
  const method = document.querySelector("input[name=method]:checked").value;
  const running = { active: true };
  watch(running);
  try {
    const state = await call("POST", "/api/photos/run", { method, fast: $("fast").checked });
    $("grid").scrollTop = 0;
    return state;
  } finally {
    running.active = false;
    $("status").textContent = "";
  }
}, "Done."));

$("download").addEventListener("click", async () => {
  const response = await fetch("/api/photos/download");
  if (!response.ok) {
    const data = await response.json().catch(() => ({}));
    message(data.error || response.statusText, "error");
    return;
  }
  const link = document.createElement("a");
  link.href = URL.createObjectURL(await response.blob());
  link.download = "photos.zip";
  link.click();
});

act(() => call("GET", "/api/photos"));
