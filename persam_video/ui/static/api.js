// persam-video ui: calls to the JSON API (/api/...) and the page's messages. A message is a toast over
// the top of the frame (it never moves or hides a control); an error goes at the next action that
// succeeds or after a few seconds, whichever comes first.
"use strict";

const $ = (id) => document.getElementById(id);
const MESSAGE_SECONDS = { error: 8, warning: 10, info: 5 };
let messageTimer = null;

// Show `text` as a message of `kind` (error, warning, info); "" hides it. `sticky`: no timer (a
// message saying what is being done, replaced when it is done).
function show(text, kind = "error", sticky = false) {
  const box = $("message");
  clearTimeout(messageTimer);
  $("message-text").textContent = text || "";
  box.className = text ? kind : "";
  box.hidden = !text;
  if (text && !sticky) messageTimer = setTimeout(() => { box.hidden = true; }, MESSAGE_SECONDS[kind] * 1000);
}

// A successful action ends the error shown (a warning or a note stays until its own time is up).
function clearError() {
  if ($("message").className === "error") show("");
}

$("message-close").addEventListener("click", () => show(""));

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

let pending = Promise.resolve();  // the actions run one after the other, in the order asked

// Run an action after those asked before it (so answers are applied in order: a late answer never
// overwrites a newer state); its answer (the new state) is applied and ends any error shown; a failure
// is shown. `busyText` is shown while the action runs.
function act(action, busyText) {
  const run = pending.then(async () => {
    if (busyText) show(busyText, "info", true);
    try {
      const answer = await action();
      if (answer) apply(answer);
      if (busyText) show("");
      clearError();
      return answer;
    } catch (error) {
      show(error.message);
      return null;
    }
  });
  pending = run;
  return run;
}
