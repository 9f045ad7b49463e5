// persam-video ui: prompts on the frame. A click is a positive or negative click (Shift: the other kind)
// for the selected object; with the box tool a drag draws a box. A drag with a click tool, or with the
// middle button, pans the zoomed frame instead. Undo, redo and "clear this object's clicks here" are
// the server's (it keeps the history, so the masks come back exactly).
"use strict";

const DRAG_PIXELS = 4;  // a press that moves farther than this (CSS pixels) is a drag, not a click
let press = null;       // the press in progress: {x, y (client), start (frame pixels), button, panning}

function tool() {
  return document.querySelector("input[name=tool]:checked").value;
}

function setTool(value) {
  for (const input of document.querySelectorAll("input[name=tool]")) input.checked = input.value === value;
}

canvas.addEventListener("contextmenu", (event) => event.preventDefault());

canvas.addEventListener("pointerdown", (event) => {
  if (event.button !== 0 && event.button !== 1) return;
  event.preventDefault();
  canvas.setPointerCapture(event.pointerId);
  press = { x: event.clientX, y: event.clientY, start: framePoint(event), button: event.button, panning: false };
});

canvas.addEventListener("pointermove", (event) => {
  if (!press) return;
  const boxing = tool() === "box" && press.button === 0;
  if (!press.panning && !boxing && Math.hypot(event.clientX - press.x, event.clientY - press.y) > DRAG_PIXELS) {
    press.panning = true;
    canvas.classList.add("panning");
  }
  if (press.panning) {
    panBy(event.clientX - press.x, event.clientY - press.y);
    press.x = event.clientX;
    press.y = event.clientY;
  } else if (boxing) {
    rubberBand = [...press.start, ...framePoint(event)];
    drawMarks();
  }
});

canvas.addEventListener("pointerup", (event) => {
  const done = press;
  press = null;
  rubberBand = null;
  canvas.classList.remove("panning");
  if (!done || done.panning || done.button !== 0) return;
  const [x, y] = framePoint(event);
  if (!state || !state.video) { show("load a video first"); return; }
  pause();
  if (tool() === "box") {
    act(() => api("POST", "api/box", { frame, object: selected, box: [...done.start, x, y] }),
      "SAM is decoding the box…");
  } else {
    const positive = (tool() === "positive") !== event.shiftKey;
    act(() => api("POST", "api/click", { frame, object: selected, x, y, positive }), "SAM is decoding the click…");
  }
});

canvas.addEventListener("pointercancel", () => {
  press = null;
  rubberBand = null;
  canvas.classList.remove("panning");
  drawMarks();
});

function undo() {
  act(() => api("POST", "api/undo"), "Undoing…");
}

function redo() {
  act(() => api("POST", "api/redo"), "Redoing…");
}

function clearHere() {
  act(() => api("POST", "api/clear", { frame, object: selected }));
}

// The Undo / Redo / Clear buttons: enabled when there is something to do, saying what.
function updateFrameTools() {
  const history = (state && state.history) || {};
  const running = Boolean(state && state.track && state.track.state === "running");
  $("undo").disabled = running || !history.undo;
  $("undo").title = history.undo ? `Undo the ${history.undo} (Ctrl+Z)` : "Nothing to undo (Ctrl+Z)";
  $("redo").disabled = running || !history.redo;
  $("redo").title = history.redo ? `Redo the ${history.redo} (Ctrl+Shift+Z)` : "Nothing to redo (Ctrl+Shift+Z)";
  const marks = (state && state.marks && state.marks[String(frame)]) || {};
  $("clear").disabled = running || !(String(selected) in marks);
}

$("undo").addEventListener("click", undo);
$("redo").addEventListener("click", redo);
$("clear").addEventListener("click", clearHere);
