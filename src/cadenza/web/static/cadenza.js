// cadenza UI: the only script. It keeps two things live and never builds HTML from data:
// pages with data-live reload when what their JSON says changes, and a running attempt's
// log (pre[data-log]) grows as the task writes it. Text is added with createTextNode only.
"use strict";

const POLL_MS = 1500;

// Fields that change on every poll without anything having happened.
const VOLATILE = new Set(["duration", "next_run"]);

function fingerprint(value) {
  return JSON.stringify(value, (key, v) => (VOLATILE.has(key) ? undefined : v));
}

// shown: the state the page was rendered in. The first answer may already be newer (a run
// can go from queued to waiting before the script asks): then reload at once, or the page
// would show the old state until something else changed, which may be never.
function watchPage(url, shown) {
  let first = null;
  const tick = async () => {
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (response.ok) {
        const data = await response.json();
        const print = fingerprint(data);
        if (first === null && shown && data.state !== shown) { window.location.reload(); return; }
        if (first === null) first = print;
        else if (print !== first) { window.location.reload(); return; }
      }
    } catch (err) { /* the server may be restarting: try again */ }
    setTimeout(tick, POLL_MS);
  };
  tick();
}

function tailLog(pre) {
  let offset = Number(pre.dataset.offset || 0);
  const url = pre.dataset.log;
  const tick = async () => {
    try {
      const response = await fetch(`${url}?offset=${offset}`, { credentials: "same-origin" });
      if (response.ok) {
        const piece = await response.json();
        if (piece.text) {
          const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
          pre.appendChild(document.createTextNode(piece.text));
          if (atBottom) pre.scrollTop = pre.scrollHeight;
        }
        offset = piece.offset;
        if (piece.done) { pre.removeAttribute("data-log"); return; }
      }
    } catch (err) { /* keep trying */ }
    setTimeout(tick, POLL_MS);
  };
  tick();
}

document.addEventListener("DOMContentLoaded", () => {
  const live = document.body.dataset.live;
  if (live) watchPage(live, document.body.dataset.liveState);
  document.querySelectorAll("pre[data-log]").forEach(tailLog);
});
