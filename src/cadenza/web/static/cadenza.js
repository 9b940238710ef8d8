// cadenza UI: the only script. It keeps two things live and never builds HTML from data:
// pages with data-live reload when what their JSON says changes, and a running attempt's
// log (pre[data-log]) grows as the task writes it. Text is added with createTextNode only.
// It also lets a graph (figure[data-zoom]) be zoomed and panned; without it the graph is
// still drawn whole, fitted to its box.
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

// -- zoom and pan of a graph ----------------------------------------------------------------
// The wheel or a pinch zooms about the pointer, a drag pans, the buttons zoom about the centre
// or fit the graph to its box again. All of it moves the svg's viewBox, kept for the page's
// reloads (data-live) in sessionStorage. A drag never follows the link it started on.
const ZOOM_STEP = 1.25, ZOOM_MIN = 0.5, ZOOM_MAX = 10, DRAG_PX = 4;

function zoomable(figure, index) {
  const svg = figure.querySelector("svg.dag");
  if (!svg || svg.classList.contains("empty")) return;
  const box = svg.viewBox.baseVal;
  const fit = { x: box.x, y: box.y, w: box.width, h: box.height };
  const key = `cadenza-zoom:${window.location.pathname}:${index}`;
  let view = { ...fit };
  const show = () => {
    svg.setAttribute("viewBox", `${view.x} ${view.y} ${view.w} ${view.h}`);
    svg.dataset.zoom = (fit.w / view.w).toFixed(3);
    try { sessionStorage.setItem(key, JSON.stringify(view)); } catch (err) { /* private mode */ }
  };
  const zoomAt = (factor, cx, cy) => {
    const now = fit.w / view.w;
    const next = Math.min(ZOOM_MAX, Math.max(ZOOM_MIN, now * factor));
    const f = next / now;
    view = { x: cx - (cx - view.x) / f, y: cy - (cy - view.y) / f, w: view.w / f, h: view.h / f };
    show();
  };
  const atClient = (x, y) => new DOMPoint(x, y).matrixTransform(svg.getScreenCTM().inverse());
  const centre = () => [view.x + view.w / 2, view.y + view.h / 2];
  const bar = document.createElement("div");
  bar.className = "zoom";
  const buttons = [
    ["+", "zoom in", () => zoomAt(ZOOM_STEP, ...centre())],
    ["\u2212", "zoom out", () => zoomAt(1 / ZOOM_STEP, ...centre())],
    ["fit", "fit the graph to its box", () => { view = { ...fit }; show(); }],
  ];
  for (const [text, label, act] of buttons) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = text;
    button.title = label;
    button.setAttribute("aria-label", label);
    button.addEventListener("click", act);
    bar.appendChild(button);
  }
  figure.appendChild(bar);
  figure.classList.add("zoomable");
  try {
    const kept = JSON.parse(sessionStorage.getItem(key) || "null");
    if (kept && [kept.x, kept.y, kept.w, kept.h].every(Number.isFinite) && kept.w > 0 && kept.h > 0) {
      view = kept;
      show();
    }
  } catch (err) { /* nothing kept */ }

  svg.addEventListener("wheel", (event) => {
    event.preventDefault();
    const p = atClient(event.clientX, event.clientY);
    zoomAt(Math.exp(-event.deltaY * (event.ctrlKey ? 0.01 : 0.002)), p.x, p.y);
  }, { passive: false });

  const pointers = new Map();
  let travelled = 0, spread = 0;
  const spreadOf = () => {
    const [a, b] = [...pointers.values()];
    return Math.hypot(a.x - b.x, a.y - b.y);
  };
  svg.addEventListener("pointerdown", (event) => {
    pointers.set(event.pointerId, { x: event.clientX, y: event.clientY });
    travelled = 0;
    if (pointers.size === 2) spread = spreadOf();
  });
  svg.addEventListener("pointermove", (event) => {
    const last = pointers.get(event.pointerId);
    if (!last) return;
    const dx = event.clientX - last.x, dy = event.clientY - last.y;
    pointers.set(event.pointerId, { x: event.clientX, y: event.clientY });
    travelled += Math.abs(dx) + Math.abs(dy);
    if (travelled < DRAG_PX) return;
    if (!svg.hasPointerCapture(event.pointerId)) svg.setPointerCapture(event.pointerId);
    svg.classList.add("dragging");
    if (pointers.size === 2) {
      const now = spreadOf();
      const [a, b] = [...pointers.values()];
      const p = atClient((a.x + b.x) / 2, (a.y + b.y) / 2);
      if (spread > 0) zoomAt(now / spread, p.x, p.y);
      spread = now;
      return;
    }
    const m = svg.getScreenCTM();
    view = { ...view, x: view.x - dx / m.a, y: view.y - dy / m.d };
    show();
  });
  const up = (event) => {
    pointers.delete(event.pointerId);
    svg.classList.remove("dragging");
  };
  svg.addEventListener("pointerup", up);
  svg.addEventListener("pointercancel", up);
  // A drag that ends on a task's box is not a click on its link.
  svg.addEventListener("click", (event) => {
    if (travelled >= DRAG_PX) { event.preventDefault(); event.stopPropagation(); }
  }, true);
}

// The gates page's "pick all" box (hidden without script: each row still has its own).
function pickAll(box) {
  const picks = () => document.querySelectorAll("input.pick");
  box.hidden = false;
  box.addEventListener("change", () => picks().forEach((pick) => { pick.checked = box.checked; }));
  picks().forEach((pick) => pick.addEventListener("change", () => {
    box.checked = Array.from(picks()).every((one) => one.checked);
  }));
}

document.addEventListener("DOMContentLoaded", () => {
  const all = document.getElementById("pick-all");
  if (all) pickAll(all);
  document.querySelectorAll("figure[data-zoom]").forEach(zoomable);
  const live = document.body.dataset.live;
  if (live) watchPage(live, document.body.dataset.liveVersion);
  document.querySelectorAll("pre[data-log]").forEach(tailLog);
});
