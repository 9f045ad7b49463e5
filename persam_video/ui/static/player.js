// persam-video ui: moving through the clip. Step by 1 and 10, first and last, a frame-number box, the
// slider, and playback at the clip's frame rate (a frame is shown before the next is asked for, so a
// slow server slows playback down instead of skipping frames). The URL's hash (#frame=N) keeps the frame.
"use strict";

let frame = 0;         // the frame shown
let playing = null;    // while playing: {timer, last (ms of the last step)}

function lastFrame() {
  return state && state.video ? state.video.frames - 1 : 0;
}

// Show frame `index` (clamped to the clip). `how.user`: the user moved, so a running Track stops
// following its frames; `how.playing`: a step of playback (anything else pauses it).
function goTo(index, how = {}) {
  if (!state || !state.video) return;
  if (!how.playing) pause();
  if (how.user) {
    clearError();  // moving on is an action that succeeded
    if (state.track && state.track.state === "running") $("follow").checked = false;
  }
  frame = Math.max(0, Math.min(lastFrame(), Math.round(index)));
  $("slider").value = frame;
  if (document.activeElement !== $("frame-box")) $("frame-box").value = frame;
  history.replaceState(null, "", `#frame=${frame}`);
  updateFrameTools();
  draw();
}

// The frame the URL asks for (#frame=N), or null.
function hashFrame() {
  const match = /frame=(\d+)/.exec(location.hash);
  return match ? Number(match[1]) : null;
}

function play() {
  if (!state || !state.video || playing) return;
  if (frame >= lastFrame()) goTo(0);
  playing = { last: performance.now(), timer: setInterval(tick, 5) };
  $("play").textContent = "⏸ Pause";
  $("play").setAttribute("aria-pressed", "true");
}

function pause() {
  if (!playing) return;
  clearInterval(playing.timer);
  playing = null;
  $("play").textContent = "▶ Play";
  $("play").setAttribute("aria-pressed", "false");
}

function togglePlay() {
  if (playing) pause(); else play();
}

function tick() {
  if (!playing || !state || !state.video) { pause(); return; }
  const interval = 1000 / (state.video.fps > 0 ? state.video.fps : 25);
  const now = performance.now();
  if (canvas.dataset.shown !== `${frame}:${state.version}` || now - playing.last < interval) return;
  if (frame >= lastFrame()) { pause(); return; }
  playing.last = now - playing.last < 2 * interval ? playing.last + interval : now;  // keep the beat
  goTo(frame + 1, { playing: true });
  preload(frame + 1);
  preload(frame + 2);
}

function jumpToBox() {
  const value = $("frame-box").value.trim();
  if (!state || !state.video) return;
  if (!/^\d+$/.test(value) || Number(value) > lastFrame()) {
    show(`type a frame number from 0 to ${lastFrame()}`);
    $("frame-box").value = frame;
    return;
  }
  goTo(Number(value), { user: true });
}

$("slider").addEventListener("input", () => goTo(Number($("slider").value), { user: true }));
$("first").addEventListener("click", () => goTo(0, { user: true }));
$("back10").addEventListener("click", () => goTo(frame - 10, { user: true }));
$("prev").addEventListener("click", () => goTo(frame - 1, { user: true }));
$("play").addEventListener("click", togglePlay);
$("next").addEventListener("click", () => goTo(frame + 1, { user: true }));
$("fwd10").addEventListener("click", () => goTo(frame + 10, { user: true }));
$("last").addEventListener("click", () => goTo(lastFrame(), { user: true }));
$("frame-box").addEventListener("change", jumpToBox);
$("frame-box").addEventListener("keydown", (event) => {
  if (event.key === "Enter") { event.preventDefault(); jumpToBox(); $("frame-box").blur(); }
  if (event.key === "Escape") { $("frame-box").value = frame; $("frame-box").blur(); }
});
