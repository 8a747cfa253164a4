// The interpretation page: one unit at a time, answers posted as they are given.
// Plain browser JavaScript with no library: the page loads nothing but its own files.
"use strict";

const token = document.querySelector('meta[name="interpret-token"]').content;
const $ = (id) => document.getElementById(id);
const SCALE = 4; // screen pixels per 10 m pixel in the chips
const SVG = "http://www.w3.org/2000/svg";
let state = null;
let view = "label"; // "label": my answers; "review": disagreements -> consensus
let pos = 0; // position in the current list
let confidence = null; // sticky between units until changed

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const c of children) e.append(c);
  return e;
}

async function api(path, body) {
  const opts = body === undefined ? {} : {
    method: "POST", body: JSON.stringify(body),
    headers: { "Content-Type": "application/json", "X-Interpret-Token": token },
  };
  const r = await fetch(path, opts);
  const data = await r.json();
  if (!r.ok) throw new Error(data.error || r.statusText);
  return data;
}

function list() {
  return view === "review" ? state.review : state.units;
}

function current() {
  const items = list();
  return items.length ? items[Math.min(pos, items.length - 1)] : null;
}

function isOpen(item) {
  return view === "review" ? !item.consensus : !item.label;
}

function firstOpen(from) {
  const items = list();
  for (let k = 0; k < items.length; k++) {
    const i = (from + k) % items.length;
    if (isOpen(items[i])) return i;
  }
  return -1;
}

function renderHeader() {
  $("synthetic").hidden = !state.synthetic;
  $("title").textContent = `Reference interpretation: ${state.sample}`;
  const who = state.slot ? `${state.name} (${state.slot.replace("_", " ")})` : `${state.name} (reviewer)`;
  $("who").textContent = `${who}; ` + (state.blind ? "blind mode: the map's class and probability are hidden" : "the map's class and probability are shown");
  const done = view === "review" ? state.review.filter((r) => r.consensus).length : (state.slot ? state.done[state.slot] : 0);
  const total = view === "review" ? state.review.length : state.total;
  $("progress").max = Math.max(total, 1);
  $("progress").value = done;
  $("progress-label").textContent = view === "review"
    ? `${done} of ${total} disagreements resolved`
    : `${done} of ${total} units answered`;
  $("tab-label").hidden = !state.slot;
  $("tab-review").textContent = `Review disagreements (${state.review.length})`;
  $("tab-label").setAttribute("aria-pressed", String(view === "label"));
  $("tab-review").setAttribute("aria-pressed", String(view === "review"));
}

function renderAnswer(item) {
  const review = view === "review";
  const chosen = review ? item.consensus : item.label;
  $("answer-heading").textContent = review ? "Consensus" : "Your answer";
  $("classes-legend").textContent = review ? "Consensus class (keys 1–9)" : "Reference class (keys 1–9)";
  const buttons = $("class-buttons");
  buttons.replaceChildren();
  state.classes.forEach((c, k) => {
    const b = el("button", { type: "button", "data-class": c, "aria-pressed": String(chosen === c) });
    if (k < 9) b.append(el("kbd", {}, String(k + 1)));
    b.append(c);
    b.addEventListener("click", () => choose(c));
    buttons.append(b);
  });
  $("confidence").hidden = review;
  if (!review && item.confidence) confidence = item.confidence;
  const opts = $("confidence-options");
  opts.replaceChildren();
  for (const c of state.confidence) {
    const id = `conf-${c}`;
    const r = el("input", { type: "radio", name: "confidence", id, value: c });
    r.checked = confidence === c;
    r.addEventListener("change", () => { confidence = c; resave(); });
    opts.append(r, el("label", { for: id }, c));
  }
  $("note").value = review ? (item.consensus_note || "") : (item.note || "");
  const others = $("others");
  others.replaceChildren();
  if (review) {
    const ul = el("ul");
    for (const a of item.answers) {
      const who = a.name ? `${a.name} (${a.slot.replace("_", " ")})` : a.slot;
      ul.append(el("li", {}, `${who}: ${a.label}` + (a.confidence ? `, ${a.confidence} confidence` : "") + (a.note ? ` – “${a.note}”` : "")));
    }
    others.append(ul);
    if (item.consensus) others.append(el("p", {}, `Consensus so far: ${item.consensus}` + (item.consensus_by ? ` (set by ${item.consensus_by})` : "")));
  }
}

function chipFigure(unit, t, kind, label) {
  const [h, w] = unit.shape;
  const box = el("div", { class: "chip" });
  box.style.width = `${w * SCALE}px`;
  box.style.height = `${h * SCALE}px`;
  const date = unit.dates[t];
  box.append(el("img", { src: `/api/chip/${encodeURIComponent(unit.id)}/${t}/${kind}.png`, alt: `${label}, ${date}`, width: String(w * SCALE), height: String(h * SCALE) }));
  const px = el("div", { class: "pixel", "aria-hidden": "true" });
  px.style.left = `${unit.centre[1] * SCALE - 2}px`;
  px.style.top = `${unit.centre[0] * SCALE - 2}px`;
  px.style.width = `${SCALE + 4}px`;
  px.style.height = `${SCALE + 4}px`;
  box.append(px);
  return box;
}

function renderChips(unit) {
  const chips = $("chips");
  chips.replaceChildren();
  if (!unit.chips.length) {
    chips.append(el("p", {}, "No clear observation of this pixel in the period."));
    return;
  }
  const across = unit.shape[1] * unit.pixel_m;
  for (const t of unit.chips) {
    const pair = el("div", { class: "pair" }, chipFigure(unit, t, "true", "True colour"), chipFigure(unit, t, "cir", "Colour infrared"));
    chips.append(el("figure", { class: "date" }, pair, el("figcaption", {}, `${unit.dates[t]} (${Math.round(across)} m across)`)));
  }
}

function renderSeries(unit) {
  const W = 420, H = 220, L = 38, R = 10, T = 10, B = 34;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("role", "img");
  const clear = unit.series.filter((s) => s.clear).length;
  svg.setAttribute("aria-label", `NDVI and NBR over ${unit.series.length} dates with data, ${clear} clear`);
  const add = (tag, attrs, text) => {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    svg.append(e);
    return e;
  };
  const days = unit.dates.map((d) => Date.parse(d));
  const d0 = Math.min(...days), d1 = Math.max(...days, d0 + 1);
  const x = (d) => L + ((Date.parse(d) - d0) / (d1 - d0)) * (W - L - R);
  const y = (v) => T + ((1 - v) / 2) * (H - T - B);
  for (const v of [-1, -0.5, 0, 0.5, 1]) {
    add("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: v === 0 ? "#767676" : "#d0d0d0" });
    add("text", { x: L - 4, y: y(v) + 4, "text-anchor": "end", "font-size": 11, fill: "#1a1a1a" }, String(v));
  }
  if (unit.dates.length) {
    add("text", { x: L, y: H - 8, "font-size": 11, fill: "#1a1a1a" }, unit.dates[0]);
    add("text", { x: W - R, y: H - 8, "font-size": 11, "text-anchor": "end", fill: "#1a1a1a" }, unit.dates[unit.dates.length - 1]);
  }
  for (const [key, colour] of [["ndvi", "#1b7f3a"], ["nbr", "#6b3fa0"]]) {
    const pts = unit.series.filter((s) => s.clear && s[key] !== null);
    if (pts.length > 1) add("polyline", { points: pts.map((s) => `${x(s.date)},${y(s[key])}`).join(" "), fill: "none", stroke: colour, "stroke-width": 2 });
    for (const s of unit.series) {
      if (s[key] === null) continue;
      const c = add("circle", { cx: x(s.date), cy: y(s[key]), r: 4, stroke: s.clear ? colour : "#6b6b6b", "stroke-width": 1.5, fill: s.clear ? colour : "#fff" });
      const t = document.createElementNS(SVG, "title");
      t.textContent = `${key.toUpperCase()} ${s[key]} on ${s.date}` + (s.clear ? " (clear)" : ` (not clear, SCL ${s.scl})`);
      c.append(t);
    }
  }
  $("series").replaceChildren(svg);
}

async function show(focusTitle) {
  renderHeader();
  const item = current();
  if (!item) {
    $("unit-title").textContent = view === "review" ? "No disagreements to review" : "This sample has no units";
    $("unit-where").textContent = "";
    $("chips").replaceChildren();
    $("series").replaceChildren();
    $("others").replaceChildren();
    $("class-buttons").replaceChildren();
    return;
  }
  const unit = state.units[item.index];
  const n = list().length;
  $("unit-title").textContent = `Unit ${item.id} (${Math.min(pos, n - 1) + 1} of ${n})`;
  let where = `latitude ${unit.lat.toFixed(6)}, longitude ${unit.lon.toFixed(6)}`;
  if (!state.blind) where += `; map class ${unit.map_class}, ${state.target_class} probability ${unit.probability ?? "n/a"}`;
  $("unit-where").textContent = where;
  renderAnswer(item);
  if (focusTitle) $("unit-title").focus();
  $("chips").replaceChildren(el("p", {}, "Loading images…"));
  try {
    const data = await api(`/api/unit/${encodeURIComponent(item.id)}`);
    if (!current() || current().id !== item.id) return; // moved on meanwhile
    renderChips(data);
    renderSeries(data);
  } catch (e) {
    $("chips").replaceChildren(el("p", {}, `Images could not be loaded: ${e.message}`));
  }
}

async function save(label) {
  const item = current();
  if (!item) return;
  const review = view === "review";
  const body = { id: item.id, label, note: $("note").value, confidence: review ? null : confidence };
  try {
    state = await api(review ? "/api/consensus" : "/api/answer", body);
    $("status").textContent = `Saved ${label} for unit ${item.id}` + (review ? " as consensus" : (confidence ? ` (${confidence} confidence)` : ""));
    return true;
  } catch (e) {
    $("status").textContent = `Not saved: ${e.message}`;
    return false;
  }
}

async function choose(label) {
  if (!(await save(label))) return;
  const next = firstOpen(pos + 1);
  if (next >= 0) pos = next;
  else $("status").textContent += view === "review" ? "; every disagreement has a consensus" : "; every unit is answered";
  show(true);
}

function resave() {
  const item = current();
  const label = item && (view === "review" ? item.consensus : item.label);
  if (label) save(label);
}

function move(step) {
  const n = list().length;
  if (!n) return;
  pos = (Math.min(pos, n - 1) + step + n) % n;
  show(true);
}

function setView(v) {
  view = v;
  const open = firstOpen(0);
  pos = open >= 0 ? open : 0;
  show(true);
}

document.addEventListener("keydown", (ev) => {
  if (ev.target instanceof HTMLTextAreaElement || ev.ctrlKey || ev.metaKey || ev.altKey || !state) return;
  const k = ev.key.toLowerCase();
  if (/^[1-9]$/.test(k) && state.classes[Number(k) - 1] && current()) {
    ev.preventDefault();
    choose(state.classes[Number(k) - 1]);
  } else if (view === "label" && { h: "high", m: "medium", l: "low" }[k]) {
    confidence = { h: "high", m: "medium", l: "low" }[k];
    $(`conf-${confidence}`).checked = true;
    resave();
  } else if (k === "n") move(1);
  else if (k === "p") move(-1);
  else if (k === "u") { const i = firstOpen(pos + 1); if (i >= 0) { pos = i; show(true); } }
});

$("note").addEventListener("change", resave);
$("prev").addEventListener("click", () => move(-1));
$("next").addEventListener("click", () => move(1));
$("next-open").addEventListener("click", () => { const i = firstOpen(pos + 1); if (i >= 0) { pos = i; show(true); } });
$("tab-label").addEventListener("click", () => setView("label"));
$("tab-review").addEventListener("click", () => setView("review"));

(async () => {
  state = await api("/api/state");
  setView(state.slot ? "label" : "review");
})();
