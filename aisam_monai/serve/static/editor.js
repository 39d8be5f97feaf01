// aisam editor: one slice on a canvas, the model's labels and points over it, edits sent to the JSON API.
// Everything the tests read is on window.aisam (the state below).
"use strict";

const COLORS = ["#000000", "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6",
  "#bfef45", "#fabed4", "#469990", "#dcbeff", "#9a6324", "#fffac8", "#800000", "#aaffc3"];
const HIT_PX = 8;

const S = {
  token: new URLSearchParams(location.search).get("token") || "",
  sid: null, info: null, z: 0, active: 1, tool: "point",
  slices: {},            // z -> {image: Float32Array, labels: Uint8Array, points, presence, present, edited}
  scale: 1, panX: 0, panY: 0,
  selected: null, drag: null, box: null, pan: null,
  busy: 0, lastError: "", progress: {done: 0, total: 0}, repaintMs: [], saved: null,
};
window.aisam = S;

const $ = (id) => document.getElementById(id);
const canvas = $("canvas");
const ctx = canvas.getContext("2d");
const buffer = document.createElement("canvas");

function color(c) { return COLORS[c % COLORS.length]; }
function rgb(c) { const h = color(c); return [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16)); }

function status(text, error = false) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
  if (error) S.lastError = text;
}

async function api(method, path, body) {
  S.busy++;
  try {
    const headers = {"X-AISAM-Token": S.token};
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const res = await fetch(path, {method, headers, body: body === undefined ? undefined : JSON.stringify(body)});
    const data = await res.json().catch(() => ({detail: res.statusText}));
    if (!res.ok) {
      const detail = typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail);
      throw new Error(detail || `HTTP ${res.status}`);
    }
    return data;
  } finally {
    S.busy--;
  }
}

function decode(b64, Type) {
  const bytes = Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
  return new Type(bytes.buffer);
}

function store(payload) {
  const old = S.slices[payload.slice] || {};
  S.slices[payload.slice] = {
    image: payload.image ? decode(payload.image, Float32Array) : old.image,
    labels: decode(payload.labels, Uint8Array),
    points: payload.points, presence: payload.presence, present: payload.present, edited: payload.edited,
  };
  $("undo").disabled = !payload.can_undo;
  $("redo").disabled = !payload.can_redo;
}

// ---------------------------------------------------------------------------------------------------- volumes

async function listVolumes() {
  const data = await api("GET", "api/volumes");
  const ul = $("volumes");
  ul.innerHTML = "";
  for (const path of data.volumes) {
    const li = document.createElement("li");
    li.textContent = path;
    li.dataset.path = path;
    li.onclick = () => openVolume(path).catch((e) => status(e.message, true));
    ul.appendChild(li);
  }
  S.volumes = data.volumes;
}

async function openVolume(path) {
  status(`opening ${path} ...`);
  const info = await api("POST", "api/open", {path});
  S.sid = info.id; S.info = info; S.slices = {}; S.selected = null; S.saved = null;
  S.z = Math.floor(info.shape[2] / 2);
  S.active = Math.min(1, info.classes.length - 1);
  for (const li of $("volumes").children) li.classList.toggle("open", li.dataset.path === path);
  $("controls").hidden = false; $("slicebar").hidden = false;
  $("slider").max = info.shape[2] - 1;
  $("decode-path").value = info.decode_path;
  $("title").textContent = `${path}  ${info.shape.join(" x ")}`;
  fit();
  await showSlice(S.z);
  status(`opened ${path}`);
  pollProgress();
}

async function pollProgress() {
  const sid = S.sid;
  while (sid === S.sid) {
    const info = await api("GET", `api/sessions/${sid}`);
    S.progress = {done: info.done, total: info.total};
    $("progress").textContent = info.done < info.total
      ? `automatic result: ${info.done} / ${info.total} slices` : `automatic result: all ${info.total} slices`;
    if (info.done >= info.total) return;
    await new Promise((r) => setTimeout(r, 700));
  }
}

async function showSlice(z) {
  z = Math.max(0, Math.min(S.info.shape[2] - 1, z));
  S.z = z; S.selected = null;
  $("slider").value = z;
  const cached = S.slices[z];
  if (!cached || !cached.labels) {
    const wantImage = !(cached && cached.image);
    const payload = await api("GET", `api/sessions/${S.sid}/slices/${z}?image=${wantImage}`);
    if (S.z !== z) return;
    store(payload);
  }
  renderClasses();
  draw();
}

// ---------------------------------------------------------------------------------------------------- drawing

function fit() {
  const vp = $("viewport");
  canvas.width = vp.clientWidth; canvas.height = vp.clientHeight;
  if (!S.info) return;
  const [h, w] = S.info.shape;
  S.scale = Math.min(canvas.width / w, canvas.height / h);
  S.panX = (canvas.width - w * S.scale) / 2; S.panY = (canvas.height - h * S.scale) / 2;
  draw();
}

function toImage(ev) {
  const r = canvas.getBoundingClientRect();
  return {x: (ev.clientX - r.left - S.panX) / S.scale - 0.5, y: (ev.clientY - r.top - S.panY) / S.scale - 0.5};
}
function toScreen(x, y) { return [S.panX + (x + 0.5) * S.scale, S.panY + (y + 0.5) * S.scale]; }
function clampXY(p) {
  const [h, w] = S.info.shape;
  return {x: Math.min(w - 1, Math.max(0, p.x)), y: Math.min(h - 1, Math.max(0, p.y))};
}
function inside(p) { const [h, w] = S.info.shape; return p.x >= -0.5 && p.y >= -0.5 && p.x <= w - 0.5 && p.y <= h - 0.5; }

function draw() {
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const sl = S.slices[S.z];
  if (!S.info || !sl || !sl.image) return;
  const [h, w] = S.info.shape;
  const win = +$("window").value, lev = +$("level").value, alpha = +$("opacity").value;
  buffer.width = w; buffer.height = h;
  const bctx = buffer.getContext("2d");
  const img = bctx.createImageData(w, h);
  const lo = lev - win / 2;
  const cols = S.info.classes.map((_, c) => rgb(c));
  for (let k = 0; k < w * h; k++) {
    let g = 255 * (sl.image[k] - lo) / win;
    g = g < 0 ? 0 : g > 255 ? 255 : g;
    let r = g, gg = g, b = g;
    const lab = sl.labels ? sl.labels[k] : 0;
    if (lab > 0) {
      const c = cols[lab];
      r = (1 - alpha) * g + alpha * c[0]; gg = (1 - alpha) * g + alpha * c[1]; b = (1 - alpha) * g + alpha * c[2];
    }
    img.data[4 * k] = r; img.data[4 * k + 1] = gg; img.data[4 * k + 2] = b; img.data[4 * k + 3] = 255;
  }
  bctx.putImageData(img, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(buffer, S.panX, S.panY, w * S.scale, h * S.scale);
  for (const p of sl.points || []) {
    if (p.class === 0 || !sl.present[p.class] && p.generated) continue;
    const pos = S.drag && S.drag.id === p.id ? S.drag.to : p;
    const [sx, sy] = toScreen(pos.x, pos.y);
    ctx.beginPath();
    ctx.arc(sx, sy, p.generated ? 5 : 6, 0, 2 * Math.PI);
    ctx.fillStyle = p.positive ? color(p.class) : "#000";
    ctx.strokeStyle = p.positive ? "#fff" : color(p.class);
    ctx.lineWidth = p.id === S.selected ? 3 : 1.5;
    ctx.fill(); ctx.stroke();
    if (!p.positive) {
      ctx.beginPath(); ctx.moveTo(sx - 3, sy); ctx.lineTo(sx + 3, sy); ctx.stroke();
    }
  }
  if (S.box) {
    const [x1, y1] = toScreen(Math.min(S.box.a.x, S.box.b.x), Math.min(S.box.a.y, S.box.b.y));
    const [x2, y2] = toScreen(Math.max(S.box.a.x, S.box.b.x), Math.max(S.box.a.y, S.box.b.y));
    ctx.strokeStyle = color(S.active); ctx.lineWidth = 2; ctx.setLineDash([6, 4]);
    ctx.strokeRect(x1, y1, x2 - x1, y2 - y1); ctx.setLineDash([]);
  }
  $("sliceinfo").textContent = `slice ${S.z} / ${S.info.shape[2] - 1}${sl.edited ? "  (edited)" : ""}`;
}

function renderClasses() {
  const ul = $("classes");
  ul.innerHTML = "";
  const sl = S.slices[S.z];
  S.info.classes.forEach((name, c) => {
    const li = document.createElement("li");
    li.dataset.class = c;
    li.className = c === S.active ? "active" : "";
    const sw = document.createElement("span"); sw.className = "swatch"; sw.style.background = color(c);
    const box = document.createElement("input"); box.type = "checkbox"; box.disabled = c === 0;
    box.checked = sl ? sl.present[c] : true; box.title = "present on this slice";
    box.onclick = (ev) => { ev.stopPropagation(); togglePresent(c, box.checked); };
    const label = document.createElement("span"); label.textContent = name;
    const prob = document.createElement("span"); prob.className = "prob";
    prob.textContent = sl && c > 0 ? `p=${sl.presence[c].toFixed(2)}` : "";
    li.append(sw, box, label, prob);
    li.onclick = () => { S.active = c; renderClasses(); };
    ul.appendChild(li);
  });
}

// ---------------------------------------------------------------------------------------------------- edits

async function send(request, started = performance.now()) {
  try {
    const out = await api("POST", `api/sessions/${S.sid}/edit`, request);
    apply(out);
    await new Promise((r) => requestAnimationFrame(() => r()));
    S.repaintMs.push(performance.now() - started);
    status(`${request.op}: ${out.changed.length} slice(s) updated`);
  } catch (e) {
    status(e.message, true);
    draw();
  }
}

function apply(out) {
  for (const z of out.changed) if (S.slices[z] && +z !== (out.slice && out.slice.slice)) S.slices[z].labels = null;
  if (out.slice) store(out.slice);
  renderClasses();
  draw();
}

function className(c) { return S.info.classes[c]; }
function ij(p) { return [Math.round(p.y * 100) / 100, Math.round(p.x * 100) / 100]; }
function propagate() { return Math.max(0, parseInt($("propagate").value || "0", 10)); }

function togglePresent(c, on) {
  const sl = S.slices[S.z];
  const present = S.info.classes.filter((_, k) => k > 0 && (k === c ? on : sl.present[k]));
  send({op: "set_present_classes", slice: S.z, classes: present, propagate: propagate()});
}

async function history(which) {
  try {
    apply(await api("POST", `api/sessions/${S.sid}/${which}`, {slice: S.z}));
    status(which === "undo" ? "undone" : "redone");
  } catch (e) { status(e.message, true); }
}

function hit(p) {
  const sl = S.slices[S.z];
  let best = null, bestD = HIT_PX / S.scale;
  for (const q of sl.points || []) {
    if (q.class === 0 || !sl.present[q.class] && q.generated) continue;
    const d = Math.hypot(q.x - p.x, q.y - p.y);
    if (d <= bestD) { best = q; bestD = d; }
  }
  return best;
}

canvas.addEventListener("contextmenu", (ev) => ev.preventDefault());

canvas.addEventListener("mousedown", (ev) => {
  if (!S.sid || !S.slices[S.z]) return;
  const started = performance.now();
  const p = toImage(ev);
  if (ev.button === 1 || ev.altKey) { S.pan = {x: ev.clientX, y: ev.clientY, px: S.panX, py: S.panY}; return; }
  if (!inside(p)) return;
  if (S.tool === "box" && ev.button === 0) { S.box = {a: clampXY(p), b: clampXY(p)}; return; }
  const q = hit(p);
  if (q && ev.button === 0 && !ev.shiftKey) { S.drag = {id: q.id, from: q, to: q, started}; S.selected = q.id; draw(); return; }
  const positive = !(ev.button === 2 || ev.shiftKey);
  send({op: "add_point", slice: S.z, class: className(S.active), at: ij(clampXY(p)), positive}, started);
});

window.addEventListener("mousemove", (ev) => {
  if (S.pan) { S.panX = S.pan.px + ev.clientX - S.pan.x; S.panY = S.pan.py + ev.clientY - S.pan.y; draw(); }
  else if (S.drag) { S.drag.to = clampXY(toImage(ev)); draw(); }
  else if (S.box) { S.box.b = clampXY(toImage(ev)); draw(); }
});

window.addEventListener("mouseup", () => {
  if (S.pan) { S.pan = null; return; }
  if (S.drag) {
    const d = S.drag; S.drag = null;
    if (Math.hypot(d.to.x - d.from.x, d.to.y - d.from.y) >= 0.5) {
      send({op: "move_point", slice: S.z, id: d.id, to: ij(d.to)}, d.started);
    } else { draw(); }
    return;
  }
  if (S.box) {
    const {a, b} = S.box; S.box = null;
    const box = [Math.min(a.y, b.y), Math.min(a.x, b.x), Math.max(a.y, b.y), Math.max(a.x, b.x)].map(Math.round);
    if (box[2] > box[0] && box[3] > box[1]) {
      send({op: "set_box", slice: S.z, class: className(S.active), box, propagate: propagate()});
    } else { draw(); }
  }
});

canvas.addEventListener("wheel", (ev) => {
  if (!S.info) return;
  ev.preventDefault();
  if (ev.ctrlKey) {
    const r = canvas.getBoundingClientRect();
    zoom(ev.deltaY < 0 ? 1.15 : 1 / 1.15, ev.clientX - r.left, ev.clientY - r.top);
  } else {
    showSlice(S.z + (ev.deltaY > 0 ? 1 : -1)).catch((e) => status(e.message, true));
  }
}, {passive: false});

function zoom(f, cx = canvas.width / 2, cy = canvas.height / 2) {
  S.panX = cx - (cx - S.panX) * f; S.panY = cy - (cy - S.panY) * f; S.scale *= f; draw();
}

window.addEventListener("keydown", (ev) => {
  if (!S.info || ev.target.tagName === "INPUT" && ev.target.type !== "range" || ev.target.tagName === "SELECT") return;
  const k = ev.key.toLowerCase();
  if ((ev.ctrlKey || ev.metaKey) && k === "z" && !ev.shiftKey) { ev.preventDefault(); history("undo"); }
  else if ((ev.ctrlKey || ev.metaKey) && (k === "y" || k === "z")) { ev.preventDefault(); history("redo"); }
  else if (ev.key === "ArrowUp" || ev.key === "ArrowRight") { ev.preventDefault(); showSlice(S.z + 1); }
  else if (ev.key === "ArrowDown" || ev.key === "ArrowLeft") { ev.preventDefault(); showSlice(S.z - 1); }
  else if ((ev.key === "Delete" || ev.key === "Backspace") && S.selected !== null) {
    ev.preventDefault();
    send({op: "delete_point", slice: S.z, id: S.selected});
    S.selected = null;
  }
});

// ---------------------------------------------------------------------------------------------------- controls

$("slider").addEventListener("input", (ev) => showSlice(+ev.target.value).catch((e) => status(e.message, true)));
for (const id of ["window", "level", "opacity"]) $(id).addEventListener("input", draw);
for (const r of document.querySelectorAll("input[name=tool]")) r.addEventListener("change", (ev) => { S.tool = ev.target.value; });
$("undo").onclick = () => history("undo");
$("redo").onclick = () => history("redo");
$("reset").onclick = () => send({op: "clear", slice: S.z});
$("zoomin").onclick = () => zoom(1.25);
$("zoomout").onclick = () => zoom(0.8);
$("fit").onclick = fit;
$("decode-path").onchange = async (ev) => {
  try {
    await api("POST", `api/sessions/${S.sid}/decode_path`, {decode_path: ev.target.value});
    S.slices = Object.fromEntries(Object.entries(S.slices).map(([z, s]) => [z, {...s, labels: null}]));
    await showSlice(S.z);
    status(`points reach the decoder on the ${ev.target.value} path`);
  } catch (e) { status(e.message, true); }
};
$("save").onclick = async () => {
  try {
    S.saved = await api("POST", `api/sessions/${S.sid}/save`);
    $("saved").textContent = `saved ${S.saved.labels} and ${S.saved.edits}`;
    status("saved");
  } catch (e) { status(e.message, true); }
};
window.addEventListener("resize", fit);

listVolumes().catch((e) => status(e.message, true));
