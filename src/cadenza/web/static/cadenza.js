// cadenza UI: the only script. It keeps two things live and never builds HTML from data:
// pages with data-live reload when what their JSON says changes, and a running attempt's
// log (pre[data-log]) grows as the task writes it. Text is added with createTextNode only.
"use strict";

const POLL_MS = 1500;

// shown: the version of the data the page was rendered from (web/read.py's versioned()).
// The API answers the same data with its version now; another version means something
// changed, even before the first poll, so the page reloads.
function watchPage(url, shown) {
  const tick = async () => {
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (response.ok) {
        const data = await response.json();
        if (data.version !== shown) { window.location.reload(); return; }
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
  if (live) watchPage(live, document.body.dataset.liveVersion);
  document.querySelectorAll("pre[data-log]").forEach(tailLog);
});
