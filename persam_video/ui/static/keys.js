// persam-video ui: keyboard shortcuts, and the help overlay (`?`) that lists them. The table below is
// the one place they are defined: the overlay is drawn from it.
"use strict";

// [keys as shown, what it does, test(event), action]
const SHORTCUTS = [
  ["← / →", "previous / next frame", (e) => !e.shiftKey && (e.key === "ArrowLeft" || e.key === "ArrowRight"),
    (e) => goTo(frame + (e.key === "ArrowLeft" ? -1 : 1), { user: true })],
  ["Shift+← / Shift+→", "10 frames back / on", (e) => e.shiftKey && (e.key === "ArrowLeft" || e.key === "ArrowRight"),
    (e) => goTo(frame + (e.key === "ArrowLeft" ? -10 : 10), { user: true })],
  ["Home / End", "first / last frame", (e) => e.key === "Home" || e.key === "End",
    (e) => goTo(e.key === "Home" ? 0 : lastFrame(), { user: true })],
  ["G", "go to a frame (the frame box)", (e) => lower(e) === "g", () => { $("frame-box").focus(); $("frame-box").select(); }],
  ["Space", "play / pause", (e) => e.key === " ", togglePlay],
  ["P", "positive click tool", (e) => lower(e) === "p", () => setTool("positive")],
  ["N", "negative click tool (or Shift+click)", (e) => lower(e) === "n", () => setTool("negative")],
  ["B", "box tool", (e) => lower(e) === "b", () => setTool("box")],
  ["O / Shift+O", "next / previous object", (e) => lower(e) === "o", (e) => selectNext(e.shiftKey ? -1 : 1)],
  ["A", "add an object", (e) => lower(e) === "a", () => $("add-object").click()],
  ["C", "clear the selected object's clicks on this frame", (e) => lower(e) === "c", clearHere],
  ["Ctrl+Z", "undo the last click, box or clear", (e) => ctrl(e) === "z" && !e.shiftKey, undo],
  ["Ctrl+Shift+Z / Ctrl+Y", "redo", (e) => (ctrl(e) === "z" && e.shiftKey) || ctrl(e) === "y", redo],
  ["T", "Track", (e) => lower(e) === "t", startTrack],
  ["Esc", "cancel Track (or close this help)", (e) => e.key === "Escape", () => {
    if (!$("help").hidden) toggleHelp(false); else if (!$("cancel").disabled) cancelTrack();
  }],
  ["+ / − / 0", "zoom in / out / fit (or the mouse wheel; drag to pan)",
    (e) => ["+", "=", "-", "0"].includes(e.key),
    (e) => (e.key === "0" ? zoomTo(1) : zoomStep(e.key === "-" ? -1 : 1))],
  ["V", "next view: overlay, matte, cut-out, removed, background blurred", (e) => lower(e) === "v", () => {
    const views = ["overlay", "matte", "cutout", "removed", "blurred"];
    setView(views[(views.indexOf(view) + 1) % views.length]);
  }],
  ["F", "follow Track's frames on / off", (e) => lower(e) === "f", () => { $("follow").checked = !$("follow").checked; }],
  ["M", "follow motion (optical flow) on / off for the next Track", (e) => lower(e) === "m",
    () => { $("motion").checked = !$("motion").checked; }],
  ["?", "this help", (e) => e.key === "?", () => toggleHelp()],
];

// The key pressed alone (or with Shift), lower case; "" with Ctrl, Alt or Meta (the browser's own shortcuts).
function lower(event) {
  return event.ctrlKey || event.metaKey || event.altKey ? "" : event.key.toLowerCase();
}

// The key pressed with Ctrl (or Cmd), lower case; "" otherwise.
function ctrl(event) {
  return (event.ctrlKey || event.metaKey) && !event.altKey ? event.key.toLowerCase() : "";
}

function toggleHelp(open) {
  const help = $("help");
  help.hidden = open === undefined ? !help.hidden : !open;
}

function drawHelp() {
  const table = $("shortcuts");
  for (const [keys, what] of SHORTCUTS) {
    const row = table.insertRow();
    const key = document.createElement("th");
    key.textContent = keys;
    row.append(key);
    row.insertCell().textContent = what;
  }
}

// Whether a key pressed in `target` belongs to it (typing a name or a frame number, a key for a button).
function typing(target, event) {
  if (target.tagName === "TEXTAREA" || target.isContentEditable) return true;
  if (target.tagName !== "INPUT") return false;
  if (["text", "number", "search"].includes(target.type)) return event.key !== "Escape";
  return false;
}

document.addEventListener("keydown", (event) => {
  if (typing(event.target, event)) return;
  if (lower(event) === "" && !["z", "y"].includes(ctrl(event))) return;  // the browser's shortcuts stay its own
  if (event.key === " " && event.target.tagName === "BUTTON") event.target.blur();
  const shortcut = SHORTCUTS.find(([, , test]) => test(event));
  if (!shortcut) return;
  if (!$("help").hidden && event.key !== "?" && event.key !== "Escape") toggleHelp(false);
  event.preventDefault();
  shortcut[3](event);
});

$("help-button").addEventListener("click", () => toggleHelp());
$("help-close").addEventListener("click", () => toggleHelp(false));
$("help").addEventListener("click", (event) => { if (event.target === $("help")) toggleHelp(false); });
drawHelp();
