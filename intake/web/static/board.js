// The NOC board's one script (the CSP forbids inline ones): ticking countdowns, and the
// queue refreshed in place whenever the server's event stream says the store changed.
"use strict";

const SOON_MS = 60 * 60 * 1000;
const LABELS = { breached: "breached", soon: "due within the hour", ok: "on track" };

function countdownText(ms) {
  const overdue = ms < 0;
  let s = Math.floor(Math.abs(ms) / 1000);
  const d = Math.floor(s / 86400); s -= d * 86400;
  const h = Math.floor(s / 3600); s -= h * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  const two = (n) => String(n).padStart(2, "0");
  const text = d ? `${d}d ${two(h)}h` : h ? `${h}h ${two(m)}m` : `${m}m ${two(s)}s`;
  return overdue ? `overdue ${text}` : text;
}

function tick() {
  const now = Date.now();
  for (const el of document.querySelectorAll("time.countdown[data-due]")) {
    const left = Date.parse(el.dataset.due) - now;
    el.textContent = countdownText(left);
    const row = el.closest("tr.ticket");
    if (!row || row.dataset.state === "breached") continue; // a missed response stays red
    const state = left <= 0 ? "breached" : left <= SOON_MS ? "soon" : "ok";
    row.classList.remove("state-ok", "state-soon", "state-breached");
    row.classList.add(`state-${state}`);
    const label = row.querySelector(".state-label");
    if (label) label.textContent = LABELS[state];
  }
}

async function refresh(box) {
  const response = await fetch(box.dataset.rows, { headers: { Accept: "text/html" } });
  if (response.status === 401) {
    window.location.reload(); // the session ended: the reload lands on the login page
  } else if (response.ok) {
    box.innerHTML = await response.text(); // server-rendered and escaped: text stays text
    tick();
  }
}

document.addEventListener("DOMContentLoaded", () => {
  tick();
  setInterval(tick, 1000);
  const box = document.getElementById("live");
  if (box && window.EventSource) {
    const events = new EventSource("/events");
    events.addEventListener("changed", () => refresh(box));
  }
});
