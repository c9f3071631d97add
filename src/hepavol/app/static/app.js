// hepavol review: the browser side. Plain JavaScript and a 2D canvas, served by hepavol itself (no network).
// It shows what the server sends and sends back what the reader decides; no rule of the study lives here.
"use strict";

const hepavol = (window.hepavol = {
  session: null, worklist: [], sortKey: "pseudonym", sortDir: 1,
  patient: null, scan: null, meta: null, slice: 0, zoom: 1, pan: [0, 0],
  window: null, overlayOn: true, cache: new Map(), draws: 0, timings: [],
});

// A fixed palette (ColorBrewer Set1 and Dark2, colour-blind safer first); lesion n takes colour (n - 1) mod 12.
const PALETTE = [
  [228, 26, 28], [55, 126, 184], [255, 127, 0], [152, 78, 163], [255, 255, 51], [166, 86, 40],
  [247, 129, 191], [27, 158, 119], [217, 95, 2], [117, 112, 179], [231, 41, 138], [102, 166, 30],
];
const LIVER_RGB = [80, 200, 120];

function $(id) { return document.getElementById(id); }

function showMessage(text) {
  const box = $("message");
  box.textContent = text || "";
  box.hidden = !text;
}

async function api(path, body) {
  const options = { credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    options.method = "POST";
    options.headers["Content-Type"] = "application/json";
    options.headers["X-CSRF-Token"] = hepavol.session ? hepavol.session.csrf : "";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  if (!response.ok) {
    let text = response.status + " " + response.statusText;
    try { text = (await response.json()).error || text; } catch (_) { /* not JSON */ }
    throw new Error(text);
  }
  const type = response.headers.get("Content-Type") || "";
  return type.includes("application/json") ? response.json() : response.arrayBuffer();
}

function colourOf(value) { return PALETTE[(value - 1) % PALETTE.length]; }

// ------------------------------------------------------------------------------------------------ worklist
function problemOf(row) { return row.failed || row.not_ready || (row.eligibility_reasons || []).join("; "); }

function renderWorklist() {
  const text = $("filter").value.trim().toLowerCase();
  const elig = $("filter-eligibility").value;
  const rows = hepavol.worklist.filter((r) => {
    if (elig && r.eligibility !== elig) return false;
    if (!text) return true;
    return [r.pseudonym, r.eligibility, r.modality, r.analysis, r.best_overall_response, problemOf(r)]
      .join(" ").toLowerCase().includes(text);
  });
  const key = hepavol.sortKey, dir = hepavol.sortDir;
  rows.sort((a, b) => {
    const x = key === "problem" ? problemOf(a) : a[key], y = key === "problem" ? problemOf(b) : b[key];
    return (x === y ? 0 : x === null || x === undefined ? 1 : y === null || y === undefined ? -1 : x < y ? -1 : 1) * dir;
  });
  const body = $("worklist").querySelector("tbody");
  body.replaceChildren(...rows.map((r) => {
    const tr = document.createElement("tr");
    tr.dataset.pseudonym = r.pseudonym;
    for (const value of [r.pseudonym, r.eligibility, r.modality, r.scans, r.segmented + " / " + r.scans, r.analysis,
      r.best_overall_response || "", r.signed_off ? "signed" : r.reviewed ? "reviewed" : "", problemOf(r)]) {
      const td = document.createElement("td");
      td.textContent = value;
      tr.appendChild(td);
    }
    tr.addEventListener("click", () => { location.hash = "#/patient/" + encodeURIComponent(r.pseudonym); });
    return tr;
  }));
}

async function openWorklist() {
  $("patient-view").hidden = true;
  $("worklist-view").hidden = false;
  const data = await api("/api/worklist");
  hepavol.worklist = data.patients;
  $("progress").textContent = `${data.progress.analysed} of ${data.progress.eligible} eligible patients analysed; ` +
    `${data.patients.length} patients`;
  renderWorklist();
}

// ------------------------------------------------------------------------------------------------ patient
function fmt(v, digits = 1) { return v === null || v === undefined ? "" : Number(v).toFixed(digits); }

function renderPatient() {
  const p = hepavol.patient;
  $("patient-name").textContent = p.pseudonym;
  const r = p.row;
  $("patient-state").textContent = `${r.eligibility}; analysis ${r.analysis}` +
    (r.best_overall_response ? `; best response ${r.best_overall_response}` : "") +
    (r.signed_off ? `; signed off ${r.signed_off}` : "") + (problemOf(r) ? ` — ${problemOf(r)}` : "");
  $("signoff").textContent = r.signed_off ? "reopen the read" : "sign off the read";
  document.body.dataset.signed = r.signed_off ? "yes" : "no";
  $("timeline").replaceChildren(...p.scans.map((s) => {
    const b = document.createElement("button");
    b.textContent = s.date + (s.segmented ? "" : " (no mask)");
    b.dataset.study = s.study_pk;
    b.title = [s.modality, s.series_description].filter(Boolean).join(" · ");
    b.className = hepavol.scan && hepavol.scan.study_pk === s.study_pk ? "active" : "";
    b.addEventListener("click", () => {
      location.hash = "#/patient/" + encodeURIComponent(p.pseudonym) + "/" + s.study_pk;
    });
    return b;
  }));
  $("targets").value = p.targets.join(",");
  $("response").querySelector("tbody").replaceChildren(...p.assessments.map((a) => {
    const tr = document.createElement("tr");
    for (const v of [a.date, fmt(a.total_tumor_volume_ml, 2), fmt(a.volume_change_from_baseline_percent),
      fmt(a.sum_of_diameters_mm), a.overall_response || "", a.volumetric_response || ""]) {
      const td = document.createElement("td");
      td.textContent = v;
      tr.appendChild(td);
    }
    return tr;
  }));
}

function renderLesions() {
  const s = hepavol.scan;
  $("scan-totals").textContent = s && s.total_tumor_volume_ml !== null
    ? `(${s.date}: total ${fmt(s.total_tumor_volume_ml, 2)} mL, liver ${fmt(s.liver_volume_ml, 0)} mL)` : "";
  const lines = hepavol.meta ? hepavol.meta.lines : [];
  $("lesions").querySelector("tbody").replaceChildren(...(s ? s.lesions : []).map((les) => {
    const tr = document.createElement("tr");
    tr.dataset.lesion = les.lesion_id;
    const [r, g, b] = colourOf(les.label_value);
    const first = document.createElement("td");
    const sw = document.createElement("span");
    sw.className = "swatch";
    sw.style.background = `rgb(${r},${g},${b})`;
    first.append(sw, les.lesion_id);
    tr.appendChild(first);
    for (const v of [les.track_id || "", fmt(les.volume_ml, 2), fmt(les.long_axis_mm), fmt(les.short_axis_mm),
      les.measurable ? "yes" : "no", les.target ? "target" : "", les.track_status || ""]) {
      const td = document.createElement("td");
      td.textContent = v;
      tr.appendChild(td);
    }
    tr.addEventListener("click", () => {
      const line = lines.find((l) => l.lesion_id === les.lesion_id);
      if (line) setSlice(line.slice);
    });
    return tr;
  }));
}

async function openPatient(pseudonym, studyPk) {
  $("worklist-view").hidden = true;
  $("patient-view").hidden = false;
  if (!hepavol.patient || hepavol.patient.pseudonym !== pseudonym) {
    hepavol.patient = await api("/api/patients/" + encodeURIComponent(pseudonym));
  }
  const p = hepavol.patient;
  const scan = p.scans.find((s) => String(s.study_pk) === String(studyPk)) || p.scans[0];
  if (!scan) { renderPatient(); return; }
  if (!hepavol.scan || hepavol.scan.study_pk !== scan.study_pk) await openScan(scan);
  renderPatient();
  renderLesions();
}

function scanUrl() {
  return "/api/patients/" + encodeURIComponent(hepavol.patient.pseudonym) + "/scans/" + hepavol.scan.study_pk;
}

async function openScan(scan) {
  hepavol.scan = scan;
  hepavol.meta = null;
  hepavol.cache = new Map();
  const meta = await api(scanUrl());
  hepavol.meta = meta;
  const select = $("window");
  const presets = Object.entries(meta.presets || {});
  const options = presets.length ? presets : [["automatic", meta.window]];
  select.replaceChildren(...options.map(([name]) => {
    const o = document.createElement("option");
    o.value = name; o.textContent = name; return o;
  }));
  hepavol.window = options[0][1];
  $("slice").max = meta.shape[0] - 1;
  hepavol.zoom = 1; hepavol.pan = [0, 0];
  showEditState(meta.editing);
  loadVersions();
  const largest = meta.lines.find((l) => l.value === 1);
  await setSlice(largest ? largest.slice : Math.floor(meta.shape[0] / 2));
}

async function loadVersions() {
  const rows = await api(scanUrl() + "/versions");
  $("versions").querySelector("tbody").replaceChildren(...rows.map((v) => {
    const tr = document.createElement("tr");
    if (v.active) tr.className = "selected";
    for (const x of [v.version + (v.active ? " (active)" : ""), v.source, v.reader || "", v.at.slice(0, 19),
      v.note || ""]) {
      const td = document.createElement("td");
      td.textContent = x;
      tr.appendChild(td);
    }
    return tr;
  }));
}

// ------------------------------------------------------------------------------------------------ viewer
function fetchSlice(k) {
  const key = k;
  if (!hepavol.cache.has(key)) {
    const url = scanUrl();
    hepavol.cache.set(key, Promise.all([api(`${url}/slices/${k}`), api(`${url}/overlay/${k}`)])
      .then(([px, ov]) => ({ pixels: new Int16Array(px), overlay: new Uint16Array(ov) })));
    if (hepavol.cache.size > 64) hepavol.cache.delete(hepavol.cache.keys().next().value);
  }
  return hepavol.cache.get(key);
}

async function setSlice(k) {
  if (!hepavol.meta) return;
  const n = hepavol.meta.shape[0];
  k = Math.max(0, Math.min(n - 1, Math.round(k)));
  hepavol.slice = k;
  $("slice").value = k;
  $("slice-label").textContent = `slice ${k + 1} / ${n}`;
  const started = performance.now();
  const data = await fetchSlice(k);
  if (hepavol.slice !== k) return; // the reader scrolled on
  draw(data);
  hepavol.timings.push(performance.now() - started);
  for (const next of [k + 1, k - 1, k + 2, k - 2]) if (next >= 0 && next < n) fetchSlice(next);
}

const offscreen = document.createElement("canvas");

function draw(data) {
  const meta = hepavol.meta;
  const [, rows, cols] = meta.shape;
  offscreen.width = cols; offscreen.height = rows;
  const octx = offscreen.getContext("2d");
  const img = octx.createImageData(cols, rows);
  const { centre, width } = hepavol.window;
  const lo = centre - width / 2, scale = 255 / width;
  const px = data.pixels, ov = data.overlay, out = img.data, liver = meta.liver_value;
  for (let i = 0, j = 0; i < px.length; i++, j += 4) {
    let g = (px[i] - lo) * scale;
    g = g < 0 ? 0 : g > 255 ? 255 : g;
    let r = g, gg = g, b = g;
    const v = hepavol.overlayOn ? ov[i] : 0;
    if (v) {
      const [cr, cg, cb] = v === liver ? LIVER_RGB : colourOf(v);
      const a = v === liver ? 0.18 : 0.45;
      r = r * (1 - a) + cr * a; gg = gg * (1 - a) + cg * a; b = b * (1 - a) + cb * a;
    }
    out[j] = r; out[j + 1] = gg; out[j + 2] = b; out[j + 3] = 255;
  }
  octx.putImageData(img, 0, 0);
  const canvas = $("view"), ctx = canvas.getContext("2d");
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const [, sr, sc] = meta.spacing_mm;
  const fit = Math.min(canvas.width / (cols * sc), canvas.height / (rows * sr));
  const sx = fit * sc * hepavol.zoom, sy = fit * sr * hepavol.zoom;
  const ox = (canvas.width - cols * sx) / 2 + hepavol.pan[0], oy = (canvas.height - rows * sy) / 2 + hepavol.pan[1];
  hepavol.toCanvas = (row, col) => [ox + (col + 0.5) * sx, oy + (row + 0.5) * sy];
  hepavol.toIndex = (x, y) => [(y - oy) / sy - 0.5, (x - ox) / sx - 0.5];
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(offscreen, ox, oy, cols * sx, rows * sy);
  // RECIST long (solid) and short (dashed) axes on each lesion's key slice
  for (const line of meta.lines) {
    if (line.slice !== hepavol.slice || !line.long) continue;
    const [r, g, b] = colourOf(line.value);
    ctx.strokeStyle = `rgb(${r},${g},${b})`;
    ctx.lineWidth = 2;
    for (const [ends, dash] of [[line.long, []], [line.short, [4, 3]]]) {
      if (!ends) continue;
      ctx.setLineDash(dash);
      ctx.beginPath();
      ctx.moveTo(...hepavol.toCanvas(...ends[0]));
      ctx.lineTo(...hepavol.toCanvas(...ends[1]));
      ctx.stroke();
    }
    ctx.setLineDash([]);
    ctx.fillStyle = ctx.strokeStyle;
    ctx.font = "12px system-ui";
    const [tx, ty] = hepavol.toCanvas(...line.long[0]);
    ctx.fillText(line.track_id || line.lesion_id, tx + 4, ty - 4);
  }
  // orientation labels (radiological convention)
  ctx.fillStyle = "#ccc";
  ctx.font = "12px system-ui";
  ctx.fillText("R", 6, canvas.height / 2);
  ctx.fillText("L", canvas.width - 14, canvas.height / 2);
  ctx.fillText("A", canvas.width / 2, 14);
  ctx.fillText(`W ${Math.round(hepavol.window.width)} C ${Math.round(hepavol.window.centre)}`, 6, canvas.height - 8);
  canvas.dataset.slice = hepavol.slice;
  canvas.dataset.window = `${hepavol.window.centre}/${hepavol.window.width}`;
  hepavol.draws += 1;
  hepavol.lastData = data;
}

function redraw() { if (hepavol.lastData) draw(hepavol.lastData); }

function setupViewer() {
  const canvas = $("view");
  canvas.addEventListener("wheel", (e) => {
    e.preventDefault();
    if (e.ctrlKey) { hepavol.zoom *= e.deltaY < 0 ? 1.15 : 1 / 1.15; redraw(); }
    else setSlice(hepavol.slice + (e.deltaY > 0 ? 1 : -1));
  }, { passive: false });
  let drag = null;
  canvas.addEventListener("mousedown", (e) => { drag = [e.clientX, e.clientY, ...hepavol.pan]; });
  window.addEventListener("mouseup", () => { drag = null; });
  canvas.addEventListener("mousemove", (e) => {
    if (drag) { hepavol.pan = [drag[2] + e.clientX - drag[0], drag[3] + e.clientY - drag[1]]; redraw(); }
    if (!hepavol.toIndex || !hepavol.lastData) return;
    const rect = canvas.getBoundingClientRect();
    const [row, col] = hepavol.toIndex(e.clientX - rect.left, e.clientY - rect.top).map(Math.round);
    const [, rows, cols] = hepavol.meta.shape;
    if (row < 0 || col < 0 || row >= rows || col >= cols) { $("hover").textContent = ""; return; }
    const value = hepavol.lastData.pixels[row * cols + col];
    const label = hepavol.lastData.overlay[row * cols + col];
    const what = label === 0 ? "" : label === hepavol.meta.liver_value ? " liver" : ` lesion L${label}`;
    $("hover").textContent = `row ${row} column ${col}: ${value}${hepavol.meta.modality === "CT" ? " HU" : ""}${what}`;
  });
  canvas.addEventListener("keydown", (e) => {
    const keys = { ArrowUp: 1, ArrowDown: -1, PageUp: 10, PageDown: -10 };
    if (e.key in keys) { e.preventDefault(); setSlice(hepavol.slice + keys[e.key]); }
    else if (e.key === "+") { hepavol.zoom *= 1.25; redraw(); }
    else if (e.key === "-") { hepavol.zoom /= 1.25; redraw(); }
    else if (e.key === "0") { hepavol.zoom = 1; hepavol.pan = [0, 0]; redraw(); }
  });
  $("slice").addEventListener("input", (e) => setSlice(Number(e.target.value)));
  $("window").addEventListener("change", (e) => {
    const presets = hepavol.meta.presets || {};
    hepavol.window = presets[e.target.value] || hepavol.meta.window;
    redraw();
  });
  $("overlay-on").addEventListener("change", (e) => { hepavol.overlayOn = e.target.checked; redraw(); });
  $("zoom-in").addEventListener("click", () => { hepavol.zoom *= 1.25; redraw(); });
  $("zoom-out").addEventListener("click", () => { hepavol.zoom /= 1.25; redraw(); });
  $("zoom-reset").addEventListener("click", () => { hepavol.zoom = 1; hepavol.pan = [0, 0]; redraw(); });
}

// ------------------------------------------------------------------------------------------------ editing
function showEditState(st) {
  hepavol.editing = st;
  const edits = st ? st.edits : 0;
  $("undo").disabled = !(st && st.can_undo);
  $("redo").disabled = !(st && st.can_redo);
  $("save").disabled = !edits;
  $("discard").disabled = !st;
  $("edit-state").textContent = st ? `${edits} unsaved edit(s); ${st.lesions} lesion(s), ` +
    `${Number(st.tumor_volume_ml).toFixed(2)} mL` + (st.what ? ` — last: ${st.what}` : "") : "";
  document.body.dataset.edits = String(edits);
}

async function sendEdit(body) {
  const started = performance.now();
  try {
    const st = await api(scanUrl() + "/edit", body);
    hepavol.cache = new Map(); // the overlay changed
    showEditState(st);
    showMessage("");
    await setSlice(hepavol.slice);
    hepavol.editTimings.push(performance.now() - started);
  } catch (err) { showMessage(err.message); }
  document.body.dataset.editDone = String((Number(document.body.dataset.editDone) || 0) + 1);
}

function setupEditing() {
  hepavol.editTimings = [];
  const canvas = $("view");
  let line = null, stroke = null;
  const at = (e) => {
    const rect = canvas.getBoundingClientRect();
    return hepavol.toIndex(e.clientX - rect.left, e.clientY - rect.top);
  };
  canvas.addEventListener("mousedown", (e) => {
    const tool = $("tool").value;
    if (tool === "navigate" || !hepavol.toIndex) return;
    e.stopImmediatePropagation();
    const [r, c] = at(e);
    if (tool === "recist") line = [r, c];
    else if (["lesion", "erase lesion", "liver", "erase liver"].includes(tool)) stroke = [[r, c]];
    else sendEdit({ action: tool, point: [hepavol.slice, r, c] });
  }, true);
  canvas.addEventListener("mousemove", (e) => {
    if (stroke) { stroke.push(at(e)); }
    if (line && hepavol.toCanvas) {
      redraw();
      const ctx = canvas.getContext("2d");
      ctx.strokeStyle = "#fff"; ctx.lineWidth = 1.5;
      ctx.beginPath(); ctx.moveTo(...hepavol.toCanvas(...line)); ctx.lineTo(e.clientX - canvas.getBoundingClientRect().left,
        e.clientY - canvas.getBoundingClientRect().top); ctx.stroke();
    }
  });
  window.addEventListener("mouseup", (e) => {
    if (line) {
      const end = at(e);
      const start = line;
      line = null;
      sendEdit({ action: "recist", point: [hepavol.slice, ...start], end: [hepavol.slice, ...end] });
    } else if (stroke) {
      const points = stroke;
      stroke = null;
      sendEdit({ action: "brush", mode: $("tool").value, slice: hepavol.slice, points,
        radius_mm: Number($("brush-mm").value) });
    }
  });
  $("undo").addEventListener("click", () => sendEdit({ action: "undo" }));
  $("redo").addEventListener("click", () => sendEdit({ action: "redo" }));
  $("discard").addEventListener("click", () => sendEdit({ action: "discard" }).then(() => showEditState(null)));
  $("save").addEventListener("click", async () => {
    try {
      const out = await api(scanUrl() + "/save", { note: $("save-note").value });
      hepavol.patient = out.patient;
      hepavol.scan = out.patient.scans.find((s) => s.study_pk === hepavol.scan.study_pk);
      showMessage("");
      $("edit-state").textContent = `saved version ${out.saved.version} (${out.saved.changed_voxels} voxels ` +
        `changed); ${out.analysis}`;
      const keep = hepavol.slice;
      hepavol.meta = await api(scanUrl());
      hepavol.cache = new Map();
      showEditState(hepavol.meta.editing);
      $("edit-state").textContent = `saved version ${out.saved.version}; ${out.analysis}`;
      renderPatient(); renderLesions(); loadVersions();
      await setSlice(keep);
      document.body.dataset.saved = "version";
    } catch (err) { showMessage(err.message); }
  });
}

// ------------------------------------------------------------------------------------------------ decisions
function setupDecisions() {
  $("signoff-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const signed = Boolean(hepavol.patient.row.signed_off);
    decide("sign-off", { action: signed ? "reopened" : "signed", reason: $("signoff-reason").value });
  });
  $("eligibility-form").addEventListener("submit", (e) => {
    e.preventDefault();
    decide("eligibility", { decision: $("decision").value, reason: $("eligibility-reason").value });
  });
  $("targets-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("targets").value.trim();
    const targets = text === "auto" ? "auto" : text.split(",").map((t) => t.trim()).filter(Boolean);
    decide("targets", { targets, reason: $("targets-reason").value });
  });
}

async function decide(what, body) {
  try {
    hepavol.patient = await api(`/api/patients/${encodeURIComponent(hepavol.patient.pseudonym)}/${what}`, body);
    showMessage("");
    renderPatient();
    document.body.dataset.saved = what;
  } catch (err) { showMessage(err.message); }
}

// ------------------------------------------------------------------------------------------------ routing
async function route() {
  showMessage("");
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  try {
    if (parts[0] === "patient" && parts[1]) await openPatient(parts[1], parts[2]);
    else { hepavol.patient = null; hepavol.scan = null; await openWorklist(); }
  } catch (err) { showMessage(err.message); }
  document.body.dataset.ready = location.hash || "#/";
}

async function start() {
  try {
    hepavol.session = await api("/api/session");
  } catch (err) { showMessage(err.message); return; }
  $("reader").textContent = "reader: " + hepavol.session.reader;
  $("study").textContent = hepavol.session.study;
  document.querySelectorAll("#worklist th[data-key]").forEach((th) => th.addEventListener("click", () => {
    hepavol.sortDir = hepavol.sortKey === th.dataset.key ? -hepavol.sortDir : 1;
    hepavol.sortKey = th.dataset.key;
    renderWorklist();
  }));
  $("filter").addEventListener("input", renderWorklist);
  $("filter-eligibility").addEventListener("change", renderWorklist);
  setupViewer();
  setupEditing();
  setupDecisions();
  window.addEventListener("hashchange", route);
  await route();
}

start();
