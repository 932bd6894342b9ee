// medseq live monitor: one tile per open signal stream, updated live.
// Alerts come from the Server-Sent Events feed /v1/alerts/events (token in the query, as
// EventSource cannot set headers); stream states and recent samples are polled each second
// from /v1/monitor/streams and /v1/monitor/streams/{id}/samples (token in the header).
"use strict";

const WINDOW_S = 8;       // seconds of waveform drawn per tile
const POLL_MS = 1000;
const tiles = new Map();  // stream id -> tile
let token = null;
let feed = null;
let polling = false;

function takeToken() {
  // #token=... in the URL (then removed from the address bar), else this tab's storage
  const hash = new URLSearchParams(location.hash.slice(1));
  if (hash.get("token")) {
    sessionStorage.setItem("medseq-token", hash.get("token"));
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem("medseq-token");
}

function setStatus(text) { document.getElementById("status").textContent = text; }

function askToken(why) {
  setStatus(why);
  document.getElementById("login").classList.add("shown");
}

async function api(path) {
  const r = await fetch(path, { headers: { Authorization: "Bearer " + token } });
  if (r.status === 401) {
    sessionStorage.removeItem("medseq-token");
    throw new Error("unauthorized");
  }
  if (!r.ok) { throw new Error(path + ": HTTP " + r.status); }
  return r.json();
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) { e.className = cls; }
  if (text !== undefined) { e.textContent = text; }
  return e;
}

function fact(box, name) {
  const d = el("div");
  d.append(el("span", null, name));
  const v = el("b", null, "-");
  d.append(v);
  box.append(d);
  return v;
}

function tileFor(id) {
  let t = tiles.get(id);
  if (t) { return t; }
  const root = el("section", "tile");
  root.dataset.streamId = id;
  const h = el("h2");
  h.append(el("span", null, id));
  const clock = el("span", "clock", "");
  h.append(clock);
  const canvas = el("canvas");
  canvas.width = 800; canvas.height = 140;
  const facts = el("div", "facts");
  t = {
    id, root, clock, canvas, fs: 360, next: null, samples: [], start: 0, alerts: new Set(),
    rhythm: fact(facts, "rhythm (open episodes)"), beat: fact(facts, "last beat"),
    risk: fact(facts, "probability"), quality: fact(facts, "signal quality"),
  };
  t.rhythm.className = "rhythm"; t.beat.className = "beat"; t.risk.className = "risk";
  const list = el("ol", "alerts");
  t.list = list;
  root.append(h, canvas, facts, el("div", null, "Alerts"), list);
  document.getElementById("tiles").append(root);
  document.getElementById("empty").style.display = "none";
  tiles.set(id, t);
  return t;
}

function showState(t, s) {
  t.fs = s.fs_hz;
  t.clock.textContent = s.seconds.toFixed(0) + " s, " + s.n_beats + " beats";
  const open = s.open_episodes || [];
  t.rhythm.textContent = open.length ? open.join(", ") : "no episode";
  t.root.classList.toggle("alarm", open.length > 0);
  const b = s.last_beat;
  if (b) {
    t.beat.textContent = b.label;
    const p = b.probabilities[b.label];
    t.risk.textContent = p === undefined ? "-" : b.label + " " + p.toFixed(2);
  }
  const q = s.quality || { state: "good", reason: "" };
  t.quality.textContent = q.state + (q.reason ? ": " + q.reason : "");
  t.quality.className = "quality " + (q.state === "good" ? "quality-good" : "quality-bad");
  t.root.dataset.quality = q.state;
}

function addAlert(a) {
  const t = tileFor(a.stream_id);
  if (t.alerts.has(a.id)) { return; }
  t.alerts.add(a.id);
  const li = el("li", a.kind,
    a.kind + " " + a.episode + " at " + a.start_s.toFixed(1) + " s" +
    (a.reason ? " (" + a.reason + ")" : "") + ", reported " + a.reported_s.toFixed(1) + " s");
  li.dataset.alertId = a.id;
  li.dataset.kind = a.kind;
  li.dataset.episode = a.episode;
  t.list.prepend(li);
}

async function pollSamples(t) {
  const q = t.next === null ? "?seconds=" + WINDOW_S : "?seconds=" + WINDOW_S + "&after=" + t.next;
  const r = await api("/v1/monitor/streams/" + encodeURIComponent(t.id) + "/samples" + q);
  if (t.next === null || r.start !== t.next) {  // first look, or a jump: start over
    t.samples = r.samples; t.start = r.start;
  } else {
    t.samples = t.samples.concat(r.samples);
  }
  t.next = r.start + r.samples.length;
  const keep = Math.round(WINDOW_S * r.fs_hz);
  if (t.samples.length > keep) {
    t.start += t.samples.length - keep;
    t.samples = t.samples.slice(t.samples.length - keep);
  }
  draw(t);
}

function draw(t) {
  const c = t.canvas, g = c.getContext("2d");
  g.fillStyle = "#0b1015"; g.fillRect(0, 0, c.width, c.height);
  const xs = t.samples.filter(v => v !== null);
  if (!xs.length) { return; }
  let lo = Math.min(...xs), hi = Math.max(...xs);
  if (hi - lo < 0.5) { const m = (hi + lo) / 2; lo = m - 0.25; hi = m + 0.25; }
  const n = Math.round(WINDOW_S * t.fs);
  g.strokeStyle = "#57ab5a"; g.lineWidth = 1.2; g.beginPath();
  let pen = false;
  t.samples.forEach((v, i) => {
    if (v === null) { pen = false; return; }
    const x = (i + n - t.samples.length) * c.width / n;
    const y = c.height - 6 - (v - lo) / (hi - lo) * (c.height - 12);
    if (pen) { g.lineTo(x, y); } else { g.moveTo(x, y); pen = true; }
  });
  g.stroke();
  c.dataset.drawn = String(t.samples.length);
}

async function poll() {
  if (polling) { return; }
  polling = true;
  try {
    const r = await api("/v1/monitor/streams?limit=200");
    const open = new Set(r.streams.map(s => s.stream_id));
    for (const [id, t] of tiles) {
      if (!open.has(id)) { t.root.remove(); tiles.delete(id); }
    }
    for (const s of r.streams) { showState(tileFor(s.stream_id), s); }
    await Promise.all([...tiles.values()].map(pollSamples));
    document.getElementById("empty").style.display = tiles.size ? "none" : "block";
    setStatus(r.total + " open stream(s), updated " + new Date().toLocaleTimeString());
  } catch (err) {
    if (err.message === "unauthorized") { stop(); askToken("the token was refused"); }
    else { setStatus("update failed: " + err.message); }
  } finally {
    polling = false;
  }
}

function follow() {
  feed = new EventSource("/v1/alerts/events?access_token=" + encodeURIComponent(token));
  feed.addEventListener("alert", e => addAlert(JSON.parse(e.data)));
  feed.onerror = () => setStatus("alert feed reconnecting...");
}

let timer = null;
function stop() {
  if (feed) { feed.close(); feed = null; }
  if (timer) { clearInterval(timer); timer = null; }
}

function start() {
  document.getElementById("login").classList.remove("shown");
  follow();
  poll();
  timer = setInterval(poll, POLL_MS);
}

document.getElementById("login").addEventListener("submit", e => {
  e.preventDefault();
  token = document.getElementById("token").value.trim();
  if (token) { sessionStorage.setItem("medseq-token", token); start(); }
});

token = takeToken();
if (token) { start(); } else { askToken("enter the service's bearer token"); }
