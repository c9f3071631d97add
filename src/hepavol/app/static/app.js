// hepavol review: the browser side. Plain JavaScript and a 2D canvas, served by hepavol itself (no network).
// It shows what the server sends and sends back what the reader decides; no rule of the study lives here.
"use strict";

const hepavol = (window.hepavol = {
  session: null, worklist: [], sortKey: "pseudonym", sortDir: 1,
  patient: null, scan: null, viewers: [], overlayOn: true, draws: 0, timings: [],
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
    let hover = null; // a reader who rests on a row for 150 ms is likely to open it: read its scans meanwhile
    tr.addEventListener("mouseenter", () => {
      hover = setTimeout(() => api(`/api/patients/${encodeURIComponent(r.pseudonym)}/prefetch`).catch(() => {}), 150);
    });
    tr.addEventListener("mouseleave", () => clearTimeout(hover));
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
  $("nt-date").replaceChildren(...p.scans.slice(1).map((s) => {
    const o = document.createElement("option");
    o.value = o.textContent = s.date;
    return o;
  }));
  const marks = p.recist_marks || { non_target: {}, new_lesions: {} };
  const calls = [...Object.entries(marks.non_target).map(([d, c]) => `non-target ${d}: ${c}`),
    ...Object.entries(marks.new_lesions).map(([l, c]) => `${l}: ${c}`)];
  $("marks-current").textContent = calls.length ? "reader's calls: " + calls.join("; ") : "no reader's call";
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
  renderLinks();
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

// the reader's relinks of this scan's lesions (study review --link): not on the baseline, whose lesions are each
// their own track
function renderLinks() {
  const p = hepavol.patient, s = hepavol.scan;
  const followUp = Boolean(s && p.scans.length && p.scans[0].study_pk !== s.study_pk && s.lesions.length);
  $("link-form").hidden = !followUp;
  if (!followUp) return;
  const options = [...s.lesions.map((les) => [les.lesion_id, `${les.lesion_id} (track ${les.track_id || "?"})`]),
    ["none", "none (a track without lesion here)"]];
  const keep = $("link-lesion").value;
  $("link-lesion").replaceChildren(...options.map(([value, text]) => {
    const o = document.createElement("option"); o.value = value; o.textContent = text; return o;
  }));
  if (options.some(([value]) => value === keep)) $("link-lesion").value = keep;
  // the patient's tracks, each with the scans it is seen on: choosing one fills the track field (a merge of two
  // tracks, L4+L5, is typed there)
  const seen = new Map();
  for (const scan of p.scans) {
    for (const les of scan.lesions || []) {
      if (!les.track_id) continue;
      if (!seen.has(les.track_id)) seen.set(les.track_id, []);
      seen.get(les.track_id).push(scan.date);
    }
  }
  const tracks = [...seen.keys()].sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
  $("link-to").replaceChildren(...[
    ["", "choose…"],
    ...tracks.map((t) => [t, `${t} (seen ${seen.get(t).join(", ")})`]),
    ["new", "new (a lesion not seen before)"],
    ["auto", "auto (back to the automatic match)"],
  ].map(([value, text]) => {
    const o = document.createElement("option"); o.value = value; o.textContent = text; return o;
  }));
  const links = Object.entries((p.lesion_links || {})[s.date] || {}).map(([k, v]) => `${k} → ${v}`);
  const stale = (p.stale_links || []).includes(s.date) ? " (made on an earlier segmentation: not applied)" : "";
  $("links-current").textContent = links.length ? `reader's links on ${s.date}: ${links.join("; ")}${stale}`
    : "no reader's link on this scan";
}

async function relink() {
  const s = hepavol.scan, p = hepavol.patient;
  const body = { links: [`${s.date}:${$("link-lesion").value}=${$("link-track").value.trim()}`],
    reason: $("link-reason").value };
  try {
    const out = await api(`/api/patients/${encodeURIComponent(p.pseudonym)}/lesion-links`, body);
    hepavol.patient = out;
    hepavol.scan = out.scans.find((x) => x.study_pk === s.study_pk);
    const main = hepavol.viewers[0];
    main.scan = hepavol.scan;
    main.meta = await api(scanUrl());
    showMessage(out.analysis_outcome === "analysis updated" ? "" : out.analysis_outcome);
    renderPatient(); renderLesions(); redraw();
    document.body.dataset.saved = "lesion-links";
  } catch (err) { showMessage(err.message); }
}

async function openPatient(pseudonym, studyPk) {
  $("worklist-view").hidden = true;
  $("patient-view").hidden = false;
  if (!hepavol.patient || hepavol.patient.pseudonym !== pseudonym) {
    const open = studyPk ? `?open=${encodeURIComponent(studyPk)}` : "";  // the server starts loading it
    hepavol.patient = await api("/api/patients/" + encodeURIComponent(pseudonym) + open);
  }
  const p = hepavol.patient;
  const scan = p.scans.find((s) => String(s.study_pk) === String(studyPk)) || p.scans[0];
  if (!scan) { renderPatient(); return; }
  if (!hepavol.scan || hepavol.scan.study_pk !== scan.study_pk) await openScan(scan);
  renderPatient();
  renderLesions();
  await loadSecondReads();
  document.body.dataset.viewing = `${p.pseudonym} ${scan.date}`; // the page is ready on this scan
}

function cellsRow(values) {
  const tr = document.createElement("tr");
  for (const v of values) {
    const td = document.createElement("td");
    td.textContent = v;
    tr.appendChild(td);
  }
  return tr;
}

// a blinded reader's own targets on their own baseline segmentation (nothing of the study's read)
function renderOwnTargets(own) {
  $("own-lesions").querySelector("tbody").replaceChildren(...own.lesions.map((les) => cellsRow([les.lesion_id,
    fmt(les.long_axis_mm), les.measurable ? "yes" : "no", les.target ? "target" : ""])));
  $("own-targets").value = own.targets.join(",");
  $("own-targets-state").textContent = `baseline ${own.baseline_date}: ${own.targets.join(", ") || "no target"} ` +
    `(${own.chosen_by_hand ? "chosen by you" : "automatic"}), sum of diameters ${fmt(own.sum_of_diameters_mm)} mm`;
}

async function loadOwnTargets() {
  if (!hepavol.session.blinded) return;
  renderOwnTargets(await api(`/api/patients/${encodeURIComponent(hepavol.patient.pseudonym)}/second-read-targets`));
}

async function chooseOwnTargets() {
  const text = $("own-targets").value.trim();
  const targets = text === "auto" ? "auto" : text.split(",").map((t) => t.trim()).filter(Boolean);
  try {
    renderOwnTargets(await api(`/api/patients/${encodeURIComponent(hepavol.patient.pseudonym)}/second-read-targets`,
      { targets, reason: $("own-targets-reason").value }));
    showMessage("");
    document.body.dataset.saved = "own-targets";
  } catch (err) { showMessage(err.message); }
}

async function loadSecondReads() {
  await loadOwnTargets();
  const box = $("second-reads-box");
  box.hidden = !hepavol.patient.second_reads;
  if (box.hidden) return;
  const targets = await api(`/api/patients/${encodeURIComponent(hepavol.patient.pseudonym)}/second-read-targets`);
  $("second-targets").querySelector("tbody").replaceChildren(...targets.map((t) => cellsRow([t.reader,
    t.targets.join(", ") + (t.chosen_by_hand ? "" : " (automatic)"),
    t.lesions.filter((l) => l.target).map((l) => l.study_lesion_id || "none").join(", "),
    fmt(t.sum_of_diameters_mm), (t.study_targets || []).join(", "), fmt(t.study_sum_of_diameters_mm)])));
  const rows = await api(`/api/patients/${encodeURIComponent(hepavol.patient.pseudonym)}/second-reads`);
  $("second-reads").querySelector("tbody").replaceChildren(...rows.map((r) => {
    const tr = document.createElement("tr");
    for (const v of [r.date, r.reader, fmt(r.study_tumor_volume_ml, 2), fmt(r.second_tumor_volume_ml, 2),
      fmt(r.volume_difference_percent), fmt(r.tumor_dice, 3), `${r.study_lesions} / ${r.second_lesions}`]) {
      const td = document.createElement("td");
      td.textContent = v;
      tr.appendChild(td);
    }
    return tr;
  }));
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
// A Viewer shows one scan in one plane. Its cursor is a display index [slice, row, column] of the axial grid
// (slice 0 inferior, row 0 anterior, column 0 the patient's right); the plane picks which coordinate scrolls.
class Viewer {
  constructor(canvas) {
    this.canvas = canvas;
    this.scan = null; this.meta = null; this.plane = "axial"; this.cursor = [0, 0, 0];
    this.zoom = 1; this.pan = [0, 0]; this.window = null; this.cache = new Map(); this.lastData = null;
    this.toCanvas = null; this.toIndex = null; this.partner = null; this.mark = null; this.linkGeneration = 0;
  }

  url() { return "/api/patients/" + encodeURIComponent(hepavol.patient.pseudonym) + "/scans/" + this.scan.study_pk; }

  dims() { return this.meta.planes[this.plane]; }

  axis() { return { axial: 0, coronal: 1, sagittal: 2 }[this.plane]; }

  index() { return Math.round(this.cursor[this.axis()]); }

  // 2D (row, column) of this plane's image -> 3D display index, and back
  to3d(row, col) {
    const n = this.meta.shape[0], i = this.index();
    if (this.plane === "axial") return [i, row, col];
    if (this.plane === "coronal") return [n - 1 - row, i, col];
    return [n - 1 - row, col, i];
  }

  from3d([k, r, c]) {
    const n = this.meta.shape[0];
    if (this.plane === "axial") return [r, c];
    if (this.plane === "coronal") return [n - 1 - k, c];
    return [n - 1 - k, r];
  }

  async open(scan) {
    this.scan = scan; this.meta = null; this.cache = new Map(); this.lastData = null;
    const meta = await api(this.url());
    this.meta = meta;
    this.window = Object.values(meta.presets || {})[0] || meta.window;
    this.zoom = 1; this.pan = [0, 0]; this.mark = null;
    const largest = meta.lines.find((l) => l.value === 1);
    const [n, rows, cols] = meta.shape;
    this.cursor = largest ? largest.centre.slice() : [Math.floor(n / 2), Math.floor(rows / 2), Math.floor(cols / 2)];
    if (largest) this.cursor[0] = largest.slice;
    await this.show();
  }

  setPlane(plane) {
    this.plane = plane;
    this.zoom = 1; this.pan = [0, 0];
    return this.show();
  }

  fetch(i) {
    const key = this.plane + i;
    if (!this.cache.has(key)) {
      const url = this.url(), q = `?plane=${this.plane}`;
      this.cache.set(key, Promise.all([api(`${url}/slices/${i}${q}`), api(`${url}/overlay/${i}${q}`)])
        .then(([px, ov]) => ({ pixels: new Int16Array(px), overlay: new Uint16Array(ov) })));
      if (this.cache.size > 64) this.cache.delete(this.cache.keys().next().value);
    }
    return this.cache.get(key);
  }

  async setSlice(i, { link = true } = {}) {
    if (!this.meta) return;
    const n = this.dims().n;
    i = Math.max(0, Math.min(n - 1, Math.round(i)));
    this.cursor[this.axis()] = i;
    await this.show();
    if (link) await this.linkPartner();
  }

  async show() {
    const i = this.index(), n = this.dims().n, plane = this.plane;
    if (this === hepavol.viewers[0]) {
      $("slice").max = n - 1; $("slice").value = i;
      $("slice-label").textContent = `${plane} ${i + 1} / ${n}`;
    }
    const started = performance.now();
    const data = await this.fetch(i);
    if (this.index() !== i || this.plane !== plane) return; // the reader scrolled on
    this.draw(data);
    if (this === hepavol.viewers[0]) hepavol.timings.push(performance.now() - started);
    for (const next of [i + 1, i - 1, i + 2, i - 2]) if (next >= 0 && next < n) this.fetch(next);
  }

  async linkPartner() {
    const other = this.partner;
    if (!other || !other.meta || !$("link").checked) return;
    const generation = ++other.linkGeneration; // a later link or match wins over this one
    try {
      const q = new URLSearchParams({ from: this.scan.study_pk, to: other.scan.study_pk, k: this.cursor[0],
        r: this.cursor[1], c: this.cursor[2] });
      const to = await api(`/api/patients/${encodeURIComponent(hepavol.patient.pseudonym)}/link?${q}`);
      if (generation !== other.linkGeneration) return;
      const n = other.meta.shape;
      other.cursor = [to.k, to.r, to.c].map((v, a) => Math.max(0, Math.min(n[a] - 1, v)));
      $("link-state").textContent = to.registered ? "linked through the registration" : "linked by position (no registration stored)";
      await other.show();
    } catch (err) { showMessage(err.message); }
  }

  redraw() { if (this.lastData) this.draw(this.lastData); }

  draw(data) {
    const meta = this.meta, { height: rows, width: cols, sy, sx } = this.dims();
    offscreen.width = cols; offscreen.height = rows;
    const octx = offscreen.getContext("2d");
    const img = octx.createImageData(cols, rows);
    const { centre, width } = this.window;
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
    const canvas = this.canvas, ctx = canvas.getContext("2d");
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    const fit = Math.min(canvas.width / (cols * sx), canvas.height / (rows * sy));
    const kx = fit * sx * this.zoom, ky = fit * sy * this.zoom;
    const ox = (canvas.width - cols * kx) / 2 + this.pan[0], oy = (canvas.height - rows * ky) / 2 + this.pan[1];
    this.toCanvas2d = (row, col) => [ox + (col + 0.5) * kx, oy + (row + 0.5) * ky];
    this.toIndex2d = (x, y) => [(y - oy) / ky - 0.5, (x - ox) / kx - 0.5];
    // (row, column) of the axial grid on the current slice <-> canvas (editing and the tests use these)
    this.toCanvas = (row, col) => this.toCanvas2d(...this.from3d([this.index(), row, col]));
    this.toIndex = (x, y) => this.toIndex2d(x, y);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(offscreen, ox, oy, cols * kx, rows * ky);
    if (this.plane === "axial") this.drawLines(ctx);
    if (this.mark && Math.round(this.mark[this.axis()]) === this.index()) {
      const [x, y] = this.toCanvas2d(...this.from3d(this.mark));
      ctx.strokeStyle = "#fff"; ctx.lineWidth = 1.5; ctx.setLineDash([3, 3]);
      ctx.beginPath(); ctx.arc(x, y, 18, 0, 2 * Math.PI); ctx.stroke(); ctx.setLineDash([]);
    }
    ctx.fillStyle = "#ccc";
    ctx.font = "12px system-ui";
    const side = this.plane === "sagittal" ? ["A", "P"] : ["R", "L"];
    ctx.fillText(side[0], 6, canvas.height / 2);
    ctx.fillText(side[1], canvas.width - 14, canvas.height / 2);
    ctx.fillText(this.plane === "axial" ? "A" : "S", canvas.width / 2, 14);
    ctx.fillText(`${this.scan.date} · ${this.plane} · W ${Math.round(this.window.width)} C ` +
      `${Math.round(this.window.centre)}`, 6, canvas.height - 8);
    canvas.dataset.slice = this.index();
    canvas.dataset.plane = this.plane;
    canvas.dataset.window = `${this.window.centre}/${this.window.width}`;
    canvas.dataset.date = this.scan.date;
    hepavol.draws += 1;
    this.lastData = data;
  }

  drawLines(ctx) {
    for (const line of this.meta.lines) {
      if (line.slice !== this.index() || !line.long) continue;
      const [r, g, b] = colourOf(line.value);
      ctx.strokeStyle = `rgb(${r},${g},${b})`;
      ctx.lineWidth = 2;
      for (const [ends, dash] of [[line.long, []], [line.short, [4, 3]]]) {
        if (!ends) continue;
        ctx.setLineDash(dash);
        ctx.beginPath();
        ctx.moveTo(...this.toCanvas2d(...ends[0]));
        ctx.lineTo(...this.toCanvas2d(...ends[1]));
        ctx.stroke();
      }
      ctx.setLineDash([]);
      ctx.fillStyle = ctx.strokeStyle;
      ctx.font = "12px system-ui";
      const [tx, ty] = this.toCanvas2d(...line.long[0]);
      ctx.fillText(line.track_id || line.lesion_id, tx + 4, ty - 4);
    }
  }

  pointAt(e) {
    const rect = this.canvas.getBoundingClientRect();
    const [row, col] = this.toIndex2d(e.clientX - rect.left, e.clientY - rect.top);
    return this.to3d(row, col);
  }

  valueAt(point) {
    if (!this.lastData) return null;
    const [row, col] = this.from3d(point).map(Math.round);
    const { height, width } = this.dims();
    if (row < 0 || col < 0 || row >= height || col >= width) return null;
    return { value: this.lastData.pixels[row * width + col], label: this.lastData.overlay[row * width + col] };
  }

  // a click while navigating: the cursor moves there; on a lesion, its tracked match is shown in the partner
  async select(point) {
    this.cursor = point.slice();
    this.cursor[this.axis()] = this.index();
    const at = this.valueAt(point);
    this.mark = point.slice();
    this.redraw();
    const other = this.partner;
    if (!other || !other.meta) return;
    if (at && at.label && at.label !== this.meta.liver_value) {
      const line = this.meta.lines.find((l) => l.value === at.label);
      const match = line && line.track_id ? other.meta.lines.find((l) => l.track_id === line.track_id) : null;
      if (match) {
        other.linkGeneration += 1; // links still in flight no longer move the partner
        other.mark = [match.slice, match.centre[1], match.centre[2]];
        other.cursor = other.mark.slice();
        $("link-state").textContent = `${line.lesion_id} (track ${line.track_id}) on ${this.scan.date} = ` +
          `${match.lesion_id} on ${other.scan.date}`;
        await other.show();
        document.body.dataset.matched = match.lesion_id;
        return;
      }
      $("link-state").textContent = `${line ? line.lesion_id : "this lesion"} has no tracked match on ` +
        `${other.scan.date} (new, disappeared, or not analysed yet)`;
    }
    other.mark = null;
    await this.linkPartner();
  }
}

const offscreen = document.createElement("canvas");

// the primary viewer (left) under the names the rest of the page and the tests use
Object.defineProperty(hepavol, "meta", { get: () => hepavol.viewers[0].meta });
Object.defineProperty(hepavol, "slice", { get: () => hepavol.viewers[0].index() });
Object.defineProperty(hepavol, "toCanvas", { get: () => hepavol.viewers[0].toCanvas });
Object.defineProperty(hepavol, "toIndex", { get: () => hepavol.viewers[0].toIndex });
Object.defineProperty(hepavol, "lastData", { get: () => hepavol.viewers[0].lastData });
function scanUrl() { return hepavol.viewers[0].url(); }
function setSlice(k) { return hepavol.viewers[0].setSlice(k); }
function redraw() { hepavol.viewers.forEach((v) => v.redraw()); }
function clearCaches() { hepavol.viewers.forEach((v) => { v.cache = new Map(); }); }

async function openScan(scan) {
  hepavol.scan = scan;
  const main = hepavol.viewers[0];
  await main.open(scan);
  const select = $("window");
  const presets = Object.entries(main.meta.presets || {});
  const options = presets.length ? presets : [["automatic", main.meta.window]];
  select.replaceChildren(...options.map(([name]) => {
    const o = document.createElement("option");
    o.value = name; o.textContent = name; return o;
  }));
  showEditState(main.meta.editing);
  loadVersions();
  await openComparison();
}

// the comparison viewer: the next scan of the patient (the previous one for the last scan), if any
async function openComparison(studyPk) {
  const p = hepavol.patient, main = hepavol.viewers[0], other = hepavol.viewers[1];
  const scans = p.scans.filter((s) => s.segmented && s.study_pk !== main.scan.study_pk);
  $("compare").replaceChildren(...scans.map((s) => {
    const o = document.createElement("option"); o.value = s.study_pk; o.textContent = s.date; return o;
  }));
  $("second").hidden = scans.length === 0;
  if (!scans.length) { other.scan = null; other.meta = null; return; }
  const index = p.scans.findIndex((s) => s.study_pk === main.scan.study_pk);
  const next = scans.find((s) => String(s.study_pk) === String(studyPk)) ||
    p.scans.slice(index + 1).find((s) => s.segmented) || scans[scans.length - 1];
  $("compare").value = next.study_pk;
  other.plane = main.plane;
  await other.open(next);
  await main.linkPartner();
}

function setupViewer() {
  hepavol.viewers = [new Viewer($("view")), new Viewer($("view2"))];
  hepavol.viewers[0].partner = hepavol.viewers[1];
  hepavol.viewers[1].partner = hepavol.viewers[0];
  for (const viewer of hepavol.viewers) {
    const canvas = viewer.canvas;
    canvas.addEventListener("wheel", (e) => {
      e.preventDefault();
      if (!viewer.meta) return;
      if (e.ctrlKey) { viewer.zoom *= e.deltaY < 0 ? 1.15 : 1 / 1.15; viewer.redraw(); }
      else viewer.setSlice(viewer.index() + (e.deltaY > 0 ? 1 : -1));
    }, { passive: false });
    let drag = null;
    canvas.addEventListener("mousedown", (e) => { drag = [e.clientX, e.clientY, ...viewer.pan, false]; });
    canvas.addEventListener("mouseup", (e) => {
      const navigating = viewer !== hepavol.viewers[0] || $("tool").value === "navigate";
      if (drag && !drag[4] && viewer.meta && navigating) viewer.select(viewer.pointAt(e)); // a click, not a drag
    });
    window.addEventListener("mouseup", () => { drag = null; });
    canvas.addEventListener("mousemove", (e) => {
      if (drag) {
        if (Math.abs(e.clientX - drag[0]) + Math.abs(e.clientY - drag[1]) > 3) drag[4] = true;
        if (drag[4]) { viewer.pan = [drag[2] + e.clientX - drag[0], drag[3] + e.clientY - drag[1]]; viewer.redraw(); }
      }
      if (!viewer.meta || !viewer.lastData) return;
      const point = viewer.pointAt(e);
      const at = viewer.valueAt(point);
      if (!at) { $("hover").textContent = ""; return; }
      const what = at.label === 0 ? "" : at.label === viewer.meta.liver_value ? " liver" : ` lesion L${at.label}`;
      const [k, r, c] = point.map(Math.round);
      $("hover").textContent = `${viewer.scan.date} slice ${k} row ${r} column ${c}: ${at.value}` +
        `${viewer.meta.modality === "CT" ? " HU" : ""}${what}`;
    });
    canvas.addEventListener("keydown", (e) => {
      const keys = { ArrowUp: 1, ArrowDown: -1, PageUp: 10, PageDown: -10 };
      if (e.key in keys) { e.preventDefault(); viewer.setSlice(viewer.index() + keys[e.key]); }
      else if (e.key === "+") { viewer.zoom *= 1.25; viewer.redraw(); }
      else if (e.key === "-") { viewer.zoom /= 1.25; viewer.redraw(); }
      else if (e.key === "0") { viewer.zoom = 1; viewer.pan = [0, 0]; viewer.redraw(); }
    });
  }
  $("slice").addEventListener("input", (e) => setSlice(Number(e.target.value)));
  $("window").addEventListener("change", (e) => {
    for (const viewer of hepavol.viewers) {
      if (!viewer.meta) continue;
      const presets = viewer.meta.presets || {};
      viewer.window = presets[e.target.value] || viewer.meta.window;
      viewer.redraw();
    }
  });
  $("plane").addEventListener("change", async (e) => {
    for (const viewer of hepavol.viewers) if (viewer.meta) await viewer.setPlane(e.target.value);
  });
  $("compare").addEventListener("change", (e) => openComparison(e.target.value));
  $("overlay-on").addEventListener("change", (e) => { hepavol.overlayOn = e.target.checked; redraw(); });
  $("zoom-in").addEventListener("click", () => { hepavol.viewers.forEach((v) => { v.zoom *= 1.25; }); redraw(); });
  $("zoom-out").addEventListener("click", () => { hepavol.viewers.forEach((v) => { v.zoom /= 1.25; }); redraw(); });
  $("zoom-reset").addEventListener("click", () => {
    hepavol.viewers.forEach((v) => { v.zoom = 1; v.pan = [0, 0]; }); redraw();
  });
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
    clearCaches(); // the overlay changed
    showEditState(st);
    showMessage("");
    await setSlice(hepavol.slice);
    hepavol.editTimings.push(performance.now() - started);
  } catch (err) { showMessage(err.message); }
  document.body.dataset.editDone = String((Number(document.body.dataset.editDone) || 0) + 1);
}

function setupEditing() {
  hepavol.editTimings = [];
  const viewer = hepavol.viewers[0], canvas = viewer.canvas;
  let line = null, stroke = null;
  const axialOnly = (tool) => {
    if (viewer.plane === "axial") return true;
    showMessage(`${tool} works on axial slices: switch the plane to axial (clicks work in every plane).`);
    return false;
  };
  canvas.addEventListener("mousedown", (e) => {
    const tool = $("tool").value;
    if (tool === "navigate" || !viewer.meta) return;
    e.stopImmediatePropagation();
    const point = viewer.pointAt(e);
    if (tool === "recist") { if (axialOnly("a RECIST line")) line = point; }
    else if (["lesion", "erase lesion", "liver", "erase liver"].includes(tool)) {
      if (axialOnly("the brush")) stroke = [point.slice(1)];
    } else sendEdit({ action: tool, point });
  }, true);
  canvas.addEventListener("mousemove", (e) => {
    if (stroke) stroke.push(viewer.pointAt(e).slice(1));
    if (line && viewer.toCanvas2d) {
      viewer.redraw();
      const ctx = canvas.getContext("2d"), rect = canvas.getBoundingClientRect();
      ctx.strokeStyle = "#fff"; ctx.lineWidth = 1.5;
      ctx.beginPath(); ctx.moveTo(...viewer.toCanvas2d(...viewer.from3d(line)));
      ctx.lineTo(e.clientX - rect.left, e.clientY - rect.top); ctx.stroke();
    }
  });
  window.addEventListener("mouseup", (e) => {
    if (line) {
      const start = line;
      line = null;
      sendEdit({ action: "recist", point: start, end: viewer.pointAt(e) });
    } else if (stroke) {
      const points = stroke;
      stroke = null;
      sendEdit({ action: "brush", mode: $("tool").value, slice: viewer.index(), points,
        radius_mm: Number($("brush-mm").value), shape: $("brush-3d").checked ? "sphere" : "disc" });
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
      const main = hepavol.viewers[0];
      main.scan = hepavol.scan;
      main.meta = await api(scanUrl());
      clearCaches();
      showEditState(main.meta.editing);
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
  $("own-targets-form").addEventListener("submit", (e) => {
    e.preventDefault();
    chooseOwnTargets();
  });
  $("link-form").addEventListener("submit", (e) => {
    e.preventDefault();
    relink();
  });
  $("link-to").addEventListener("change", () => {
    if ($("link-to").value) $("link-track").value = $("link-to").value;
  });
  $("marks-form").addEventListener("submit", (e) => {
    e.preventDefault();
    markCalls();
  });
}

function markCalls() {
  const body = { non_target: [], new_lesions: [], reason: $("marks-reason").value };
  if ($("nt-call").value && $("nt-date").value) body.non_target.push(`${$("nt-date").value}=${$("nt-call").value}`);
  const lesion = $("nl-id").value.trim();
  if ($("nl-call").value && lesion) body.new_lesions.push(`${lesion}=${$("nl-call").value}`);
  if (!body.non_target.length && !body.new_lesions.length) {
    showMessage("choose a non-target call or a new lesion and its call");
    return;
  }
  decide("recist-marks", body);
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
  $("reader").textContent = "reader: " + hepavol.session.reader + (hepavol.session.blinded ? " (blinded second read)" : "");
  $("reader").className = hepavol.session.blinded ? "blinded" : "";
  document.body.dataset.blinded = hepavol.session.blinded ? "yes" : "no";
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
