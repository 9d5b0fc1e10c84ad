// modeledit studio: the page's logic (vanilla JS, served locally; no outside resource).
"use strict";

const $ = (id) => document.getElementById(id);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let S = null;            // the last state from the server
let current = null;      // id of the image on the canvas
let canvasKey = null;    // what the canvas shows (image id + version), to reload only when it changes
let version = 0;         // bumps image URLs after server-side changes
let inflight = 0;
let polling = false;
let selectedCell = null;

// ---------------------------------------------------------------- messages and requests

function showMessage(text) {
  const m = $("message");
  m.textContent = text || "";
  m.hidden = !text;
}

function setBusy() {
  const running = S && S.job && S.job.status === "running";
  document.body.dataset.busy = (inflight > 0 || polling || running) ? "1" : "0";
}

async function api(path, opts = {}) {
  let resp;
  try {
    resp = await fetch(path, opts);
  } catch (e) {
    throw new Error("the studio server cannot be reached; is `modeledit studio` still running?");
  }
  let data = null;
  try { data = await resp.json(); } catch (e) { data = null; }
  if (!resp.ok) throw new Error((data && data.error) || `the server answered ${resp.status} ${resp.statusText}`);
  return data;
}

function post(path, obj) {
  return api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(obj || {}) });
}

// run one action: its failure is one message on the page; a started job is polled to its end
async function act(fn) {
  inflight += 1;
  setBusy();
  showMessage("");
  let out = null;
  try {
    out = await fn();
    version += 1;
  } catch (e) {
    showMessage(e.message);
  }
  inflight -= 1;
  try {
    if (out && out.job) await poll();
    else await refresh();
  } catch (e) {
    showMessage(e.message);
  }
  setBusy();
  return out;
}

async function poll() {
  if (polling) return;
  polling = true;
  setBusy();
  try {
    for (;;) {
      const { job } = await api("/api/job");
      renderJob(job);
      if (!job || job.status !== "running") {
        if (job && job.status === "failed") showMessage(job.error);
        break;
      }
      await sleep(300);
    }
  } catch (e) {
    showMessage(e.message);
  }
  polling = false;
  version += 1;
  await refresh().catch((e) => showMessage(e.message));
  setBusy();
}

function renderJob(job) {
  const box = $("job");
  if (!job) { box.hidden = true; return; }
  document.body.dataset.job = `${job.id}:${job.status}`;
  const what = job.status === "running" ? (job.message || job.kind) : `${job.kind}: ${job.status} in ${job.seconds} s`;
  $("job-status").textContent = what + (job.status === "running" && job.total ? ` (${job.done}/${job.total})` : "");
  $("job-progress").max = Math.max(job.total, 1);
  $("job-progress").value = job.status === "running" ? job.done : Math.max(job.total, 1);
  $("job-cancel").hidden = job.status !== "running";
  box.hidden = false;
}

// ---------------------------------------------------------------- state -> page

async function refresh() {
  S = await api("/api/state");
  renderJob(S.job);
  renderModel();
  renderThumbs();
  renderStyles();
  renderCurrent();
  renderEdit();
  renderEffect();
  renderSensitivity();
  setBusy();
}

function renderModel() {
  const m = S.model;
  $("model-info").textContent = m.loaded ? `${m.name}: ${m.classes} classes, ${m.input_size} px, ${m.sites.length} sites` : `${m.name}: loading…`;
  const r = m.runtime;
  $("model-device").textContent = r ? `on ${r.device}${r.device_name ? ` (${r.device_name})` : ""}, ${r.precision}${r.deterministic ? ", deterministic" : ""}` : "";
  const sel = $("site-select");
  const keep = sel.value;
  const sites = m.loaded ? m.sites : [];
  if (sel.dataset.sites !== sites.join(",")) {
    sel.innerHTML = "";
    sites.forEach((s) => sel.add(new Option(s + (s === m.default_site ? " (default)" : ""), s)));
    sel.value = sites.includes(keep) ? keep : (m.default_site || "");
    sel.dataset.sites = sites.join(",");
  }
  const rec = S.recommendation;
  const box = $("recommendation");
  box.textContent = rec ? `recommended: ${rec.rows.slice(0, 3).map((r) => `${r.rank}. ${r.site} (corrects ${(100 * r.val_corrected).toFixed(0)}% at strength ${r.strength}, clean drop ${(100 * r.clean_drop).toFixed(2)} pp)`).join("; ")} — within a clean drop of ${(100 * rec.budget).toFixed(2)} pp on ${rec.n_clean} clean images from ${rec.statistics}` : "";
  if (rec && sel.dataset.recommended !== JSON.stringify(rec.rows[0])) {
    sel.dataset.recommended = JSON.stringify(rec.rows[0]);
    sel.value = rec.rows[0].site;
    if (rec.rows[0].strength > 0) $("strength").value = rec.rows[0].strength;
  }
  if (m.loaded && $("model-select").value !== m.name && !$("model-select").matches(":focus")) {
    if (![...$("model-select").options].some((o) => o.value === m.name)) $("model-select").add(new Option(m.name, m.name));
    $("model-select").value = m.name;
  }
}

function imageUrl(id, view) { return `/api/images/${encodeURIComponent(id)}/${view}.png?v=${version}`; }

function renderThumbs() {
  const ul = $("thumbs");
  ul.innerHTML = "";
  if (!S.images.some((im) => im.id === current)) current = S.images.length ? S.images[S.images.length - 1].id : null;
  for (const im of S.images) {
    const li = document.createElement("li");
    li.className = im.id === current ? "selected" : "";
    li.dataset.id = im.id;
    const img = document.createElement("img");
    img.src = imageUrl(im.id, "original");
    img.alt = im.name;
    img.onclick = () => { current = im.id; renderThumbs(); renderCurrent(); };
    const cap = document.createElement("span");
    cap.textContent = im.name + (im.has_mask ? " ●" : "");
    cap.title = im.has_mask ? `mask: ${im.mask_pixels} pixels` : "no mask yet";
    const rm = document.createElement("button");
    rm.textContent = "×";
    rm.title = "remove";
    rm.onclick = () => act(() => post(`/api/images/${im.id}/remove`));
    li.append(img, cap, rm);
    ul.append(li);
  }
}

function renderStyles() {
  const sel = $("style-select");
  if (sel.dataset.styles !== S.styles.join("|")) {
    sel.innerHTML = "";
    S.styles.forEach((s) => sel.add(new Option(s, s)));
    sel.dataset.styles = S.styles.join("|");
  }
  sel.value = S.style;
  $("style-image").value = S.style_image;
}

function fillTop5(id, list) {
  const ol = $(id);
  ol.innerHTML = "";
  (list || []).forEach((p) => {
    const li = document.createElement("li");
    li.dataset.label = p.label;
    li.dataset.prob = p.prob;
    li.textContent = `${p.label} ${p.prob.toFixed(3)}`;
    ol.append(li);
  });
}

function currentImage() { return S && S.images.find((im) => im.id === current); }

function renderCurrent() {
  const im = currentImage();
  $("current-name").textContent = im ? `— ${im.name}` : "— add an image";
  $("exemplar-check").checked = im ? im.exemplar : false;
  const key = im ? `${im.id}:${canvasKeyVersion}` : null;
  if (key !== canvasKey) {
    canvasKey = key;
    loadCanvas(im);
  }
  const cf = $("cf-image");
  if (im && im.has_counterfactual) { cf.src = imageUrl(im.id, "counterfactual"); cf.classList.remove("empty"); }
  else { cf.removeAttribute("src"); cf.classList.add("empty"); }
  const pr = (im && im.preds) || {};
  const view = (v, which) => (pr[v] ? pr[v][which] : null);
  fillTop5("pred-original-base", view("original", "base"));
  fillTop5("pred-original-edited", view("original", "edited"));
  fillTop5("pred-counterfactual-base", view("counterfactual", "base"));
  fillTop5("pred-counterfactual-edited", view("counterfactual", "edited"));
  const which = S.show_edited && S.edit ? "edited" : "base";
  const top1 = (v) => { const l = view(v, which); return l && l.length ? `${l[0].label} (${l[0].prob.toFixed(2)})` : ""; };
  $("orig-top1").textContent = top1("original");
  $("cf-top1").textContent = top1("counterfactual");
  document.querySelectorAll("#preds td").forEach((td, i) => td.classList.toggle("live", (i % 2 === 1) === (which === "edited")));
}

// ---------------------------------------------------------------- the canvas

const canvas = $("canvas");
const ctx = canvas.getContext("2d");
const maskCanvas = document.createElement("canvas");
const maskCtx = maskCanvas.getContext("2d");
let baseImage = null;
let canvasKeyVersion = 0;     // bumped when the server changed a mask (segmenter, clear, model)
let painting = false;
let last = null;

function draw() {
  ctx.imageSmoothingEnabled = false;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (baseImage) ctx.drawImage(baseImage, 0, 0, canvas.width, canvas.height);
  ctx.globalAlpha = 0.45;
  ctx.drawImage(maskCanvas, 0, 0, canvas.width, canvas.height);
  ctx.globalAlpha = 1;
}

function loadImage(src) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error("an image could not be shown; reload the page"));
    img.src = src;
  });
}

async function loadCanvas(im) {
  baseImage = null;
  if (!im) { maskCanvas.width = maskCanvas.height = 1; draw(); return; }
  try {
    const img = await loadImage(imageUrl(im.id, "original"));
    baseImage = img;
    maskCanvas.width = img.naturalWidth;
    maskCanvas.height = img.naturalHeight;
    maskCtx.clearRect(0, 0, maskCanvas.width, maskCanvas.height);
    if (im.has_mask) {
      const m = await loadImage(imageUrl(im.id, "mask"));
      const tmp = document.createElement("canvas");
      tmp.width = m.naturalWidth; tmp.height = m.naturalHeight;
      const t = tmp.getContext("2d");
      t.drawImage(m, 0, 0);
      const data = t.getImageData(0, 0, tmp.width, tmp.height);
      for (let i = 0; i < data.data.length; i += 4) {
        const on = data.data[i] > 127;
        data.data[i] = 230; data.data[i + 1] = 20; data.data[i + 2] = 60; data.data[i + 3] = on ? 255 : 0;
      }
      maskCtx.putImageData(data, 0, 0);
    }
    document.body.dataset.canvas = im.id;
  } catch (e) {
    showMessage(e.message);
  }
  draw();
}

function toMask(e) {
  const r = canvas.getBoundingClientRect();
  return { x: (e.clientX - r.left) / r.width * maskCanvas.width, y: (e.clientY - r.top) / r.height * maskCanvas.height };
}

function stroke(p) {
  const eraser = document.querySelector("input[name=tool]:checked").value === "eraser";
  const radius = Number($("brush-size").value) * maskCanvas.width / canvas.width;
  maskCtx.globalCompositeOperation = eraser ? "destination-out" : "source-over";
  maskCtx.strokeStyle = maskCtx.fillStyle = "rgb(230,20,60)";
  maskCtx.lineWidth = 2 * radius;
  maskCtx.lineCap = "round";
  maskCtx.beginPath();
  maskCtx.moveTo((last || p).x, (last || p).y);
  maskCtx.lineTo(p.x, p.y);
  maskCtx.stroke();
  maskCtx.beginPath();
  maskCtx.arc(p.x, p.y, radius, 0, 2 * Math.PI);
  maskCtx.fill();
  maskCtx.globalCompositeOperation = "source-over";
  last = p;
  draw();
}

canvas.addEventListener("mousedown", (e) => {
  if (!currentImage() || !baseImage) { showMessage("add an image first (upload, a shipped photo, a folder or world scenes)"); return; }
  painting = true;
  last = null;
  stroke(toMask(e));
});
canvas.addEventListener("mousemove", (e) => { if (painting) stroke(toMask(e)); });
const endStroke = () => { if (painting) { painting = false; last = null; sendMask(); } };
canvas.addEventListener("mouseup", endStroke);
canvas.addEventListener("mouseleave", endStroke);

function sendMask() {
  const im = currentImage();
  if (!im) return;
  const w = maskCanvas.width, h = maskCanvas.height;
  const src = maskCtx.getImageData(0, 0, w, h);
  const out = document.createElement("canvas");
  out.width = w; out.height = h;
  const octx = out.getContext("2d");
  const data = octx.createImageData(w, h);
  let count = 0;
  for (let i = 0; i < src.data.length; i += 4) {
    const on = src.data[i + 3] > 127;
    count += on ? 1 : 0;
    const v = on ? 255 : 0;
    data.data[i] = data.data[i + 1] = data.data[i + 2] = v;
    data.data[i + 3] = 255;
  }
  octx.putImageData(data, 0, 0);
  if (!count) return act(() => post(`/api/images/${im.id}/clear`));
  return act(() => new Promise((resolve, reject) => out.toBlob((blob) => {
    api(`/api/images/${im.id}/mask`, { method: "POST", headers: { "Content-Type": "image/png" }, body: blob }).then(resolve, reject);
  }, "image/png")));
}

// ---------------------------------------------------------------- edit, effect, sensitivity

function renderEdit() {
  const e = S.edit;
  const info = $("edit-info");
  if (!e) { info.textContent = "no edit"; $("downloads").innerHTML = ""; }
  else {
    const obj = e.objective_before != null ? `; objective ${e.objective_before.toFixed(4)} → ${e.objective_after.toFixed(4)}` : "";
    const from = e.loaded_from ? `loaded from ${e.loaded_from}; ` : `${(e.exemplars || []).length} exemplar(s), style ${e.style}, statistics ${e.statistics}; `;
    info.textContent = `edit at ${e.site}, rank ${e.rank}, strength ${e.strength}; ${from}showing the ${S.show_edited ? "EDITED" : "original"} model${obj}`;
  }
  info.dataset.shown = S.show_edited ? "edited" : "original";
  $("toggle").disabled = $("revert").disabled = $("save").disabled = !e;
}

function cellText(v) { return v == null ? "–" : v; }

function pct(v) { return `${(100 * v).toFixed(1)}%`; }

function kOf(k, n) { return `${k} of ${n}`; }

function renderEffect() {
  const out = $("effect-out");
  const f = S.effect;
  out.innerHTML = "";
  if (!f) return;
  const p = document.createElement("p");
  p.id = "effect-summary";
  const left = f.n_excluded
    ? `its ${f.n_set} less the edit's ${f.n_excluded} exemplar image(s), ${f.excluded.join(", ")}`
    : `none of them is one of the edit's exemplars${f.exemplars_from === "session" ? " painted in this session" : ""}`;
  p.textContent = `${f.n} held-out images of ${f.set}: ${left}. ` +
    `Predictions changed: ${kOf(f.changed, f.n)} (clean change ${pct(f.clean_change)}, n = ${f.n}); ` +
    `accuracy ${pct(f.acc_before)} → ${pct(f.acc_after)} (n = ${f.n})` + (f.labelled ? "" : ", the labels being the original model's predictions");
  out.append(p);
  if (f.classes && f.classes.length) {
    const p2 = document.createElement("p");
    p2.id = "effect-counterfactual";
    p2.textContent = `${f.concept} restyled with ${f.style} on ${f.n_counterfactual} of the ${f.n} image(s) (those holding it): ` +
      `accuracy ${pct(f.cf_acc_before)} → ${pct(f.cf_acc_after)} (n = ${f.n_counterfactual})`;
    out.append(p2);
    const t = document.createElement("table");
    t.className = "classes";
    t.innerHTML = "<tr><th>class</th><th>n</th><th>errors before</th><th>after</th>" +
      "<th title='errors before the edit that it corrects, of the errors before'>corrected</th>" +
      "<th title='errors the edit makes, of the images right before'>made</th></tr>";
    f.classes.forEach((r) => {
      const tr = t.insertRow();
      [r.class, r.n, kOf(r.errors_before, r.n), kOf(r.errors_after, r.n), kOf(r.corrected, r.errors_before),
        kOf(r.made, r.n - r.errors_before)].forEach((v) => { tr.insertCell().textContent = v; });
    });
    out.append(t);
    const note = document.createElement("p");
    note.className = "note";
    note.textContent = "Per class, of its n restyled images: errors before and after the edit; corrected, of the errors before; made, of the images right before.";
    out.append(note);
  }
  if (f.changed) {
    const p3 = document.createElement("p");
    p3.textContent = f.thumbs.length < f.changed ? `The first ${f.thumbs.length} of the ${f.changed} changed predictions:` : `The ${f.changed} changed prediction(s):`;
    out.append(p3);
  }
  const grid = document.createElement("div");
  grid.className = "gallery";
  f.thumbs.forEach((th) => grid.append(figure(`/files/${th.file}`, `${th.before} → ${th.after}`)));
  out.append(grid);
}

function figure(src, caption) {
  const fig = document.createElement("figure");
  const img = document.createElement("img");
  img.src = src;
  img.alt = caption;
  const cap = document.createElement("figcaption");
  cap.textContent = caption;
  fig.append(img, cap);
  return fig;
}

function heat(drop) {
  if (drop == null) return "#eee";
  const a = Math.max(0, Math.min(1, drop / 0.5));
  return `rgba(200, 30, 40, ${0.08 + 0.85 * a})`;
}

function renderSensitivity() {
  const box = $("heatmap");
  const s = S.sensitivity;
  box.innerHTML = "";
  if (!s) { $("cell-out").innerHTML = ""; return; }
  const t = document.createElement("table");
  t.id = "heat";
  const head = t.insertRow();
  head.insertCell().textContent = "concept \\ style";
  s.styles.forEach((st) => { head.insertCell().textContent = st; });
  s.concepts.forEach((c) => {
    const tr = t.insertRow();
    tr.insertCell().textContent = c;
    s.styles.forEach((st) => {
      const cell = s.cells.find((x) => x.concept === c && x.style === st);
      const td = tr.insertCell();
      td.className = "cell";
      td.dataset.concept = c;
      td.dataset.style = st;
      td.style.background = heat(cell && cell.drop);
      td.textContent = cell && cell.drop != null ? `${(100 * cell.drop).toFixed(0)} pp (n=${cell.n})` : `– (n=${cell ? cell.n : 0})`;
      td.onclick = () => { selectedCell = { concept: c, style: st }; renderCell(); };
    });
  });
  box.append(t);
  const note = document.createElement("p");
  note.className = "note";
  const left = s.n_excluded ? ` less the edit's ${s.n_excluded} exemplar image(s), ${s.excluded.join(", ")}` : "";
  note.textContent = `accuracy drop when only the concept is restyled (higher is worse), weighted over classes; ${s.n} images of ${s.set}${left}, labels: ${s.labels}`;
  box.append(note);
  renderCell();
}

function renderCell() {
  const out = $("cell-out");
  out.innerHTML = "";
  const s = S.sensitivity;
  if (!s || !selectedCell) return;
  const cell = s.cells.find((x) => x.concept === selectedCell.concept && x.style === selectedCell.style);
  if (!cell) return;
  const h = document.createElement("h3");
  h.textContent = `${cell.concept} × ${cell.style}: classes by drop`;
  out.append(h);
  const t = document.createElement("table");
  t.className = "classes";
  t.innerHTML = "<tr><th>class</th><th>n</th><th>acc clean</th><th>restyled</th><th>drop [95% CI]</th><th></th></tr>";
  cell.rows.filter((r) => r.n_with_concept > 0).forEach((r) => {
    const tr = t.insertRow();
    const pct = (v) => (v == null ? "–" : `${(100 * v).toFixed(0)}%`);
    [r.class_name, r.n_with_concept, pct(r.acc_clean), pct(r.acc_transformed),
      r.drop == null ? "–" : `${(100 * r.drop).toFixed(0)} pp [${(100 * r.drop_low).toFixed(0)}, ${(100 * r.drop_high).toFixed(0)}]`]
      .forEach((v) => { tr.insertCell().textContent = v; });
    const b = document.createElement("button");
    b.textContent = "images";
    b.onclick = () => act(() => post("/api/cell", { concept: cell.concept, style: cell.style, class_index: r.class_index }));
    tr.insertCell().append(b);
  });
  out.append(t);
  const c = S.cell;
  if (c && c.concept === cell.concept && c.style === cell.style) {
    const p = document.createElement("p");
    p.textContent = `${c.class_name} with ${c.concept}, restyled with ${c.style}:`;
    out.append(p);
    const grid = document.createElement("div");
    grid.className = "gallery";
    c.items.forEach((it) => {
      grid.append(figure(`/files/${it.original}`, it.pred));
      grid.append(figure(`/files/${it.restyled}`, `→ ${it.pred_restyled}`));
    });
    out.append(grid);
    const use = document.createElement("button");
    use.id = "cell-use";
    use.textContent = "Use these as exemplars";
    use.onclick = () => act(() => post("/api/cell/use"));
    out.append(use);
  }
}

// ---------------------------------------------------------------- uploads

async function uploadOne(path, file) {
  const fd = new FormData();
  fd.append("file", file, file.name);
  return api(path, { method: "POST", body: fd });
}

// each file is its own request, so each bad file gets its own message
async function uploadFiles(files) {
  for (const f of files) {
    await act(() => uploadOne("/api/images/upload", f));
  }
}
window.uploadFiles = uploadFiles;

// ---------------------------------------------------------------- controls

$("model-load").onclick = () => act(() => { canvasKeyVersion += 1; return post("/api/model", { name: $("model-select").value, weights: $("model-weights").value }); });
$("job-cancel").onclick = () => post("/api/job/cancel").catch((e) => showMessage(e.message));
$("upload").onchange = async (e) => { await uploadFiles([...e.target.files]); e.target.value = ""; };
$("photo-add").onclick = () => act(() => post("/api/images/photo", { name: $("photo-select").value }));
$("world-add").onclick = () => act(() => post("/api/images/world", { split: $("world-split").value, n: Number($("world-n").value), start: Number($("world-start").value) }));
$("folder-add").onclick = () => act(() => post("/api/images/folder", { path: $("folder-path").value }));
$("mask-clear").onclick = () => { const im = currentImage(); if (!im) return; maskCtx.clearRect(0, 0, maskCanvas.width, maskCanvas.height); draw(); act(() => post(`/api/images/${im.id}/clear`)); };
$("segment").onclick = () => { const im = currentImage(); if (!im) { showMessage("add an image first"); return; } canvasKeyVersion += 1; act(() => post(`/api/images/${im.id}/segment`, { choice: $("segmenter-select").value, concept: $("segment-concept").value })); };
$("exemplar-check").onchange = (e) => { const im = currentImage(); if (im) act(() => post(`/api/images/${im.id}/exemplar`, { on: e.target.checked })); };
$("style-select").onchange = () => act(() => post("/api/style", { name: $("style-select").value, style_image: 0 }));
$("style-image").onchange = () => act(() => post("/api/style", { name: $("style-select").value, style_image: Number($("style-image").value) }));
$("style-upload").onchange = async (e) => { const f = e.target.files[0]; if (f) await act(() => uploadOne("/api/style/upload", f)); e.target.value = ""; };
$("cf-button").onclick = () => { const im = currentImage(); if (!im) { showMessage("add an image and paint its concept first"); return; } act(() => post(`/api/images/${im.id}/counterfactual`)); };
$("execute").onclick = () => act(() => post("/api/execute", { site: $("site-select").value, rank: $("rank").value, strength: Number($("strength").value), mode: $("mode").value, stats: $("stats").value }));
$("recommend").onclick = () => act(() => post("/api/recommend", { stats: $("stats").value }));
$("toggle").onclick = () => act(() => post("/api/toggle"));
$("revert").onclick = () => act(() => post("/api/revert"));
$("save").onclick = () => act(async () => {
  const out = await post("/api/save", { name: $("save-name").value });
  const d = $("downloads");
  d.innerHTML = "";
  for (const [kind, href] of Object.entries(out.files)) {
    const a = document.createElement("a");
    a.id = `dl-${kind}`;
    a.href = href;
    a.download = href.split("/").pop();
    a.textContent = a.download;
    d.append(a, " ");
  }
  return out;
});
$("load").onclick = () => act(() => {
  const files = [...$("load-files").files];
  if (files.length) {
    const fd = new FormData();
    files.forEach((f) => fd.append("files", f, f.name));
    return api("/api/load", { method: "POST", body: fd });
  }
  return post("/api/load", { path: $("load-path").value });
});
$("effect").onclick = () => act(() => post("/api/effect", { set: $("effect-set").value, concept: $("effect-concept").value, segmenter: $("segmenter-select").value }));
$("sens-run").onclick = () => act(() => post("/api/sensitivity", { set: $("sens-set").value, concepts: $("sens-concepts").value, styles: $("sens-styles").value, segmenter: $("sens-segmenter").value, labels: $("sens-labels").value }));

// a reloaded page finds a running job and follows it
(async () => {
  document.body.dataset.busy = "1";
  try {
    await refresh();
    if (S.job && S.job.status === "running") await poll();
  } catch (e) {
    showMessage(e.message);
  }
  setBusy();
})();
