"use strict";
// The photo mode: a reference photo and its clicks, a batch, Run, corrections by clicking, a zip.
const $ = (id) => document.getElementById(id);
let version = 0; // bumps image URLs after every change

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
    img.style.width = "220px";
    img.style.cursor = "crosshair";
    img.addEventListener("click", (event) => act(async () => {
      const point = imageXY(event, img, photo.width, photo.height);
      return call("POST", "/api/photos/correct", { index, x: point.x, y: point.y, positive: !event.shiftKey });
    }, "Corrected: this photo is now a reference too."));
    const caption = document.createElement("figcaption");
    caption.className = "score";
    caption.textContent = photo.found === null ? `${photo.name}: not run yet`
      : `${photo.name}: ${photo.found ? "found" : "not found"}, score ${photo.score}${photo.corrected ? " (corrected)" : ""}`;
    figure.append(img, caption);
    grid.append(figure);
  });
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
  return call("POST", "/api/photos/click", { x: point.x, y: point.y, positive: !event.shiftKey });
}));

$("clear").addEventListener("click", () => act(() => call("POST", "/api/photos/clear")));

$("run").addEventListener("click", () => act(async () => {
  $("status").textContent = "running…";
  const method = document.querySelector("input[name=method]:checked").value;
  try { return await call("POST", "/api/photos/run", { method }); } finally { $("status").textContent = ""; }
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
