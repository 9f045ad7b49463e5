// persam-video ui: the page. It keeps no state of its own beyond what is shown: every action is a
// call to the JSON API, whose answer is the session's state; the page redraws from it. The other
// scripts: api.js (calls, messages), view.js (the frame, zoom, pan), player.js (frames, playback),
// prompts.js (clicks, undo), keys.js (shortcuts, help).
"use strict";

let state = null;        // the last state the server sent
let selected = null;     // the selected object's id
let polling = null;      // the timer asking for Track's progress while it runs
let opened = null;       // which loaded video the page shows (a new one starts at frame 0)

function apply(next) {
  const first = state === null;
  state = next;
  const server = state.server;
  if (first) $("motion").checked = server.follow_motion;
  $("model").textContent = `Model: ${server.model} (${server.method})` + (server.note ? ` — ${server.note}` : "");
  $("model").title = $("model").textContent;
  $("limit").textContent = `Uploads up to ${server.max_upload_mb} MB.`;
  $("preset").hidden = !server.preset;
  $("preset").textContent = server.preset ? `Open ${server.preset}` : "";
  const video = state.video;
  $("video-info").textContent = video
    ? `${video.name}: ${video.frames} frames, ${video.width}x${video.height}, ${video.fps} fps`
    : "No video loaded.";
  $("slider").max = video ? video.frames - 1 : 0;
  $("frame-box").max = video ? video.frames - 1 : 0;
  if (video && video.opened !== opened) {  // a newly loaded video, or the page just opened
    frame = first && hashFrame() !== null ? hashFrame() : 0;
    opened = video.opened;
    zoomTo(1);
  }
  const ids = state.objects.map((o) => o.id);
  if (!ids.includes(selected)) selected = ids.length ? ids[0] : null;
  drawObjects();
  drawTrack(state.track);
  if (video) goTo(frame); else draw();
}

function drawObjects() {
  const list = $("objects");
  list.replaceChildren();
  for (const object of state.objects) {
    const item = objectRow(object, selected);
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
    item.append(name, note, remove);
    item.addEventListener("click", () => select(object.id));
    list.append(item);
  }
}

function select(id) {
  selected = id;
  for (const item of $("objects").children) item.className = Number(item.dataset.id) === id ? "selected" : "";
  updateFrameTools();
}

// Select the next object in the list (the last one wraps around to the first).
function selectNext(step = 1) {
  if (!state || !state.objects.length) return;
  const ids = state.objects.map((o) => o.id);
  select(ids[(ids.indexOf(selected) + step + ids.length) % ids.length]);
}

// What the status line says about Track; always the server's latest word.
function trackText(track) {
  if (!track) return "Not tracked yet.";
  const counts = `${track.done} of ${track.total} frames, ${track.seconds} s`;
  if (track.state === "running") {
    return track.frame === null
      ? `Preparing the objects from their clicks… (${track.seconds} s)`
      : `Tracking ${track.direction}: frame ${track.frame} (${counts}).`;
  }
  return {
    done: `Tracked: ${counts}.`,
    cancelled: `Cancelled after ${counts}; the frames tracked keep their new masks.`,
    failed: `Track failed: ${track.message}`,
  }[track.state];
}

function drawTrack(track) {
  const running = Boolean(track && track.state === "running");
  $("track").disabled = running;
  $("cancel").disabled = !running;
  for (const button of document.querySelectorAll("#downloads button")) button.disabled = running;
  const bar = $("progress");
  bar.max = track ? Math.max(track.total, 1) : 1;
  bar.value = track ? track.done : 0;
  let text = trackText(track);
  if (state && state.track_note) text += ` (${state.track_note})`;
  if (state && state.tracked && state.changed_from !== null && !running) {
    text += ` Corrected on frame ${state.changed_from}: press Track to re-run it.`;
  }
  $("track-status").textContent = text;
  $("track-status").dataset.state = track ? track.state : "none";
  updateFrameTools();
  if (running && !polling) polling = setInterval(poll, 300);
  if (!running && polling) { clearInterval(polling); polling = null; }
}

async function poll() {
  let answer;
  try {
    answer = await api("GET", "api/track");
  } catch (error) {
    show(error.message);
    return;
  }
  if (!polling) return;  // the run ended meanwhile (the state was applied)
  const track = answer.track;
  if (!track || track.state !== "running") {
    clearInterval(polling);
    polling = null;
    await act(() => api("GET", "api/state"));
    if (track && track.state === "failed") show(`Track failed: ${track.message}`);
    return;
  }
  state.track = track;
  drawTrack(track);
  if ($("follow").checked && track.frame !== null && track.frame !== frame) {
    state.version = answer.version;
    goTo(track.frame, { follow: true });
  } else if (answer.version !== state.version) {
    state.version = answer.version;
    draw();
  }
}

function startTrack() {
  if (!state || !state.video) { show("load a video first"); return; }
  if (state.track && state.track.state === "running") return;
  $("follow").checked = true;
  act(() => api("POST", "api/track", { follow_motion: $("motion").checked })).then((answer) => {
    if (answer && answer.warning) show(answer.warning, "warning");
  });
}

function cancelTrack() {
  act(() => api("POST", "api/track/cancel"));
}

$("file").addEventListener("change", async () => {
  const file = $("file").files[0];
  $("file").value = "";
  if (!file) return;
  const limit = state ? state.server.max_upload_mb : Infinity;
  if (file.size > limit * 1024 * 1024) {
    show(`${file.name} is larger than the upload limit of ${limit} MB`);
    return;
  }
  pause();
  const loaded = await act(() => api("POST", `api/video?name=${encodeURIComponent(file.name)}`, file),
    `Loading ${file.name}…`);
  if (loaded) show(`${file.name} loaded: click inside an object on any frame.`, "info");
});

$("preset").addEventListener("click", () => {
  pause();
  act(() => api("POST", "api/video/preset"), "Loading the video…");
});

$("add-object").addEventListener("click", async () => {
  const answer = await act(() => api("POST", "api/objects", {}));
  if (answer && answer.objects.length) select(answer.objects[answer.objects.length - 1].id);
});

$("track").addEventListener("click", startTrack);
$("cancel").addEventListener("click", cancelTrack);

for (const button of document.querySelectorAll("#downloads button")) {
  button.addEventListener("click", () => download(button.dataset.download, button.textContent));
}

async function download(kind, label) {
  show(`Preparing ${label}…`, "info", true);
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
