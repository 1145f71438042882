// The project page: every piece of state comes from the API (so a reload loses nothing); uploads go in
// resumable chunks; running jobs are re-read every couple of seconds, the training job streams events.
"use strict";

const CHUNK = 4 * 1024 * 1024;
const POLL_MS = 2000;
const ACTIVE = ["queued", "running", "paused"];
const projectId = document.getElementById("project").dataset.id;
let project = { files: [], jobs: [] };
const uploading = new Map();  // file id -> {name, side, sent, size, error}
const facesShown = {};  // side -> "job id:state:count" drawn last
let chart = null, chartJob = null, chartStep = 0, trainEvents = null, previewStep = "";

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== null && value !== undefined && value !== false) node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

function notice(text) { document.getElementById("notice").textContent = text; }
function latest(kind, label) {
  const jobs = project.jobs.filter((j) => j.kind === kind && (label === undefined || j.label === label));
  return jobs[jobs.length - 1] || null;
}
function latestDone(kind, label) {
  const jobs = project.jobs.filter((j) => j.kind === kind && j.label === label && j.state === "done");
  return jobs[jobs.length - 1] || null;
}
function seconds(s) {
  if (s === null || s === undefined) return "";
  s = Math.round(s);
  return s >= 3600 ? `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min` : s >= 60 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${s} s`;
}

function renderStatus(box, job, describe) {
  box.replaceChildren();
  if (!job) return;
  const words = { queued: "waiting", running: "running", paused: "paused", done: "done", failed: "failed", cancelled: "cancelled" };
  const line = el("p", {}, el("span", { class: `state-${job.state}`, text: `${words[job.state]}` }));
  const extra = describe ? describe(job) : "";
  if (extra) line.append(` · ${extra}`);
  box.append(line);
  if (ACTIVE.includes(job.state)) box.append(el("progress", { max: "1", value: String(job.progress), "aria-label": `${job.kind} progress` }));
  if (job.error) box.append(el("p", { class: "error", text: job.error }));
  if (job.state === "running" || job.state === "queued") {
    box.append(el("button", { type: "button", text: "Cancel", onclick: () => act(job, "DELETE", "") }));
  }
}

async function act(job, method, action) {
  try { await api(method, `/api/jobs/${job.id}${action}`); await refresh(); } catch (error) { notice(error.message); }
}

// -- uploads ---------------------------------------------------------------------------------------
function uploadKey(side, file) { return `swapface-upload:${projectId}:${side}:${file.name}:${file.size}:${file.lastModified}`; }

async function uploadFile(side, file) {
  const key = uploadKey(side, file);
  let status = null;
  const known = localStorage.getItem(key);
  if (known) { try { status = await api("GET", `/api/uploads/${known}`); } catch { status = null; } }
  if (!status) {
    status = await api("POST", "/api/uploads", { name: file.name, size: file.size, project: projectId, label: side });
    localStorage.setItem(key, status.id);
  }
  const entry = { name: file.name, side, sent: status.offset, size: file.size, error: null };
  uploading.set(status.id, entry);
  renderFiles();
  let offset = status.offset;
  try {
    while (!status.done && offset < file.size) {
      try {
        status = await api("PATCH", `/api/uploads/${status.id}`, file.slice(offset, offset + CHUNK),
          { headers: { "Upload-Offset": String(offset), "Content-Type": "application/octet-stream" } });
        offset = status.offset;
      } catch (error) {
        if (error.status !== 409 || !error.headers.get("Upload-Offset")) throw error;
        offset = Number(error.headers.get("Upload-Offset"));  // the server holds more (or less): go on from there
      }
      entry.sent = offset;
      renderFiles();
    }
    localStorage.removeItem(key);
    uploading.delete(status.id);
  } catch (error) {
    entry.error = error.message;
    if (error.status === 415 || error.status === 413) localStorage.removeItem(key);
  }
  await refresh();
}

function renderFiles() {
  for (const side of ["a", "b"]) {
    const list = document.querySelector(`.side[data-side="${side}"] .uploads`);
    list.replaceChildren();
    const files = project.files.filter((f) => f.label === side);
    const ids = new Set(files.map((f) => f.id));
    for (const [id, entry] of uploading) if (entry.side === side && !ids.has(id)) files.push({ id, name: entry.name, state: "uploading", size: entry.size, received: entry.sent });
    for (const file of files) {
      const live = uploading.get(file.id);
      let state;
      if (live && live.error) state = el("span", { class: "error", text: live.error });
      else if (file.state === "ready") state = el("span", { class: "state-done", text: "ready" });
      else {
        const sent = live ? live.sent : file.received;
        state = el("progress", { max: String(file.size), value: String(sent), "aria-label": `upload of ${file.name}` });
        if (!live) state = el("span", { text: `stopped at ${Math.floor((100 * sent) / file.size)}%: choose the file again to resume` });
      }
      list.append(el("li", {}, el("span", { text: file.name }), state));
    }
  }
}

function setUpDrops() {
  for (const card of document.querySelectorAll(".side")) {
    const side = card.dataset.side, drop = card.querySelector(".drop"), input = card.querySelector(".file-input");
    const send = (files) => { for (const file of files) uploadFile(side, file).catch((e) => notice(`${file.name}: ${e.message}`)); };
    input.addEventListener("change", () => { send([...input.files]); input.value = ""; });
    drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (event) => { event.preventDefault(); drop.classList.remove("over"); send([...event.dataTransfer.files]); });
    card.querySelector(".extract").addEventListener("click", async () => {
      const files = project.files.filter((f) => f.label === side && f.state === "ready").map((f) => f.id);
      if (!files.length) { notice(`Upload footage of person ${side.toUpperCase()} first.`); return; }
      try {
        await api("POST", "/api/jobs", { kind: "extract", inputs: { files }, project: projectId, label: side,
          options: { size: Number(card.querySelector(".size").value), min_face: 40 } });
        await refresh();
      } catch (error) { notice(error.message); }
    });
  }
}

// -- faces -----------------------------------------------------------------------------------------
async function renderFaces() {
  for (const side of ["a", "b"]) {
    const card = document.querySelector(`.side[data-side="${side}"]`);
    const job = latest("extract", side);
    renderStatus(card.querySelector(".job-status"), job, (j) => j.info.frames !== undefined ? `${j.info.frames} of ${j.info.frames_total || "?"} frames, ${j.info.faces} faces` : "");
    const key = job ? `${job.id}:${job.state}:${job.info.faces}` : "";
    if (!job || facesShown[side] === key) continue;
    facesShown[side] = key;
    await drawFaces(card, job);
  }
}

async function drawFaces(card, job) {
  const grid = card.querySelector(".faces"), count = card.querySelector(".count");
  const faces = await api("GET", `/api/jobs/${job.id}/faces`);
  count.textContent = `${faces.count} faces`;
  grid.replaceChildren(...faces.faces.map((face) => el("button", {
    type: "button", "aria-label": `Remove face from ${face.source}, frame ${face.frame}`,
    title: "Remove this face", disabled: job.state === "running",
    onclick: async (event) => {
      event.currentTarget.disabled = true;
      try { await api("DELETE", `/api/jobs/${job.id}/faces/${encodeURIComponent(face.name)}`); await drawFaces(card, job); } catch (error) { notice(error.message); }
    },
  }, el("img", { src: `/api/jobs/${job.id}/faces/${encodeURIComponent(face.name)}`, alt: "", loading: "lazy", width: "64", height: "64" }))));
}

// -- training --------------------------------------------------------------------------------------
function trainText(job) {
  const i = job.info || {};
  const parts = [];
  if (i.step !== undefined) parts.push(`step ${i.step}${i.steps ? ` of ${i.steps}` : ""}`);
  if (i.img_per_s) parts.push(`${i.img_per_s} images/s`);
  if (i.seconds_left !== undefined && i.seconds_left !== null && job.state === "running") parts.push(`${seconds(i.seconds_left)} left`);
  if (i.loss !== undefined) parts.push(`loss ${Number(i.loss).toFixed(4)}`);
  if (job.stopping) parts.push("stopping");
  return parts.join(" · ");
}

function setUpTraining() {
  const form = document.getElementById("train-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const a = latestDone("extract", "a"), b = latestDone("extract", "b");
    if (!a || !b) { notice("Extract the faces of both people first."); return; }
    const options = { preset: form.elements.preset.value };
    if (form.elements.time_limit.value) options.time_limit = Number(form.elements.time_limit.value);
    if (form.elements.steps.value) options.steps = Number(form.elements.steps.value);
    if (form.elements.eval_every.value) { options.eval_every = Number(form.elements.eval_every.value); options.holdout = 0.1; }
    if (options.preset === "tiny") options.batch_size = 4;
    try { await api("POST", "/api/jobs", { kind: "train", inputs: { a: a.id, b: b.id }, options, project: projectId, label: "model" }); await refresh(); } catch (error) { notice(error.message); }
  });
  for (const button of document.querySelectorAll("#train-controls button")) {
    button.addEventListener("click", () => { const job = latest("train", "model"); if (job) act(job, "POST", `/${button.dataset.action}`); });
  }
}

function renderTrainingState(job) {
  renderStatus(document.getElementById("train-status"), job, trainText);
  const controls = document.getElementById("train-controls");
  controls.hidden = !job || !ACTIVE.includes(job.state);
  if (job) {
    controls.querySelector('[data-action="pause"]').disabled = !["queued", "running"].includes(job.state);
    controls.querySelector('[data-action="resume"]').disabled = job.state !== "paused";
    controls.querySelector('[data-action="stop"]').disabled = job.state !== "running" || job.stopping;
  }
}

function renderTraining() {
  const job = latest("train", "model");
  renderTrainingState(job);
  if (!job) return;
  if (chartJob !== job.id) { chartJob = job.id; chartStep = 0; previewStep = ""; makeChart(); }
  updateCurves(job);
  if (job.state === "running" && !trainEvents) {
    trainEvents = new EventSource(`/api/jobs/${job.id}/events`);
    trainEvents.addEventListener("job", (event) => {
      const fresh = JSON.parse(event.data);
      project.jobs = project.jobs.map((j) => (j.id === fresh.id ? fresh : j));
      renderTrainingState(fresh);
      updateCurves(fresh);
    });
    trainEvents.onerror = () => { trainEvents.close(); trainEvents = null; };
  } else if (job.state !== "running" && trainEvents) { trainEvents.close(); trainEvents = null; }
}

const SERIES = [["loss", "#0b57d0"], ["l1", "#0d652d"], ["ssim", "#a50e0e"], ["mask", "#7627bb"]];
const EVAL_SERIES = [["eval_a2a_psnr", "#0b57d0"], ["eval_b2b_psnr", "#a50e0e"]];
let evalChart = null;
function lineChart(canvas, series, yType) {
  return new Chart(canvas, {
    type: "line",
    data: { datasets: series.map(([key, color]) => ({ label: key.replace("eval_", ""), data: [], borderColor: color, backgroundColor: color, pointRadius: 2, borderWidth: 2 })) },
    options: { animation: false, maintainAspectRatio: false, parsing: false, scales: { x: { type: "linear", title: { display: true, text: "step" } }, y: { type: yType } } },
  });
}
function makeChart() {
  if (chart) chart.destroy();
  if (evalChart) evalChart.destroy();
  if (typeof Chart === "undefined") return;
  chart = lineChart(document.getElementById("loss-chart"), SERIES, "logarithmic");
  evalChart = lineChart(document.getElementById("eval-chart"), EVAL_SERIES, "linear");
  document.getElementById("eval-figure").hidden = true;
}

async function updateCurves(job) {
  const step = (job.info && job.info.step) || 0;
  if (step > chartStep) {
    const rows = await api("GET", `/api/jobs/${job.id}/metrics?after=${chartStep}`);
    if (rows.length && chart) {
      for (const row of rows) {
        const [target, series] = row.event === "eval" ? [evalChart, EVAL_SERIES] : [chart, SERIES];  // held-out checks log their own lines
        series.forEach(([key], index) => { if (row[key] > 0) target.data.datasets[index].data.push({ x: row.step, y: row[key] }); });
        if (row.event === "eval") document.getElementById("eval-figure").hidden = false;
      }
      chart.update();
      evalChart.update();
      chartStep = rows[rows.length - 1].step;
    }
  }
  const key = `${step}:${job.state}`;  // the loop reports a step before it writes that step's preview
  if (key !== previewStep) {
    previewStep = key;
    const image = document.getElementById("train-preview");
    image.onload = () => { image.hidden = false; };
    image.src = `/api/jobs/${job.id}/preview?at=${encodeURIComponent(key)}`;
  }
}

// -- swap and report -------------------------------------------------------------------------------
function swapOptions(form) {
  return { direction: form.elements.direction.value, blend: form.elements.blend.value, color: form.elements.color.value,
           mask: form.elements.mask.value, sharpen: Number(form.elements.sharpen.value || 0) };
}

function setUpSwap() {
  const form = document.getElementById("swap-form");
  const send = async (label, options) => {
    const model = latestDone("train", "model");
    if (!model) { notice("Train a model first (or stop the training to keep it as it is)."); return; }
    try { await api("POST", "/api/jobs", { kind: "swap", inputs: { model: model.id, video: form.elements.video.value }, options, project: projectId, label }); await refresh(); } catch (error) { notice(error.message); }
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const options = swapOptions(form);
    if (Number(form.elements.start.value) > 0) options.start = Number(form.elements.start.value);
    if (form.elements.end.value) options.end = Number(form.elements.end.value);
    send("swap", options);
  });
  document.getElementById("swap-preview").addEventListener("click", () => send("preview", { ...swapOptions(form), preview_at: Number(form.elements.preview_at.value || 0) }));
  const split = document.getElementById("split"), over = document.getElementById("over");
  split.addEventListener("input", () => { over.style.clipPath = `inset(0 0 0 ${split.value}%)`; });
  const source = document.getElementById("source-video"), swapped = document.getElementById("swapped-video");
  for (const name of ["play", "pause", "seeked", "ratechange"]) {
    swapped.addEventListener(name, () => { source.currentTime = swapped.currentTime; source.playbackRate = swapped.playbackRate; if (name === "play") source.play(); if (name === "pause") source.pause(); });
  }
  swapped.addEventListener("loadedmetadata", () => { document.getElementById("video-info").textContent = `(${swapped.duration.toFixed(2)} s)`; });
  // one button drives both videos: native controls would be cut in half by the split
  const play = document.getElementById("play");
  play.addEventListener("click", () => { if (swapped.paused) swapped.play(); else swapped.pause(); });
  swapped.addEventListener("play", () => { play.textContent = "Pause"; });
  swapped.addEventListener("pause", () => { play.textContent = "Play"; });
  swapped.addEventListener("ended", () => { play.textContent = "Play again"; });
  swapped.addEventListener("timeupdate", () => { document.getElementById("video-time").textContent = `${swapped.currentTime.toFixed(2)} s of ${swapped.duration.toFixed(2)} s`; });
  document.getElementById("evaluate").addEventListener("click", async () => {
    const swap = latestDone("swap", "swap");
    if (!swap) { notice("Swap a whole video first."); return; }
    try { await api("POST", "/api/jobs", { kind: "eval", inputs: { swap: swap.id }, options: { min_face: 40 }, project: projectId, label: "eval" }); await refresh(); } catch (error) { notice(error.message); }
  });
}

function renderSwap() {
  const select = document.getElementById("swap-video");
  const videos = project.files.filter((f) => f.kind === "video" && (f.label === "a" || f.label === "b"));
  const wanted = videos.map((f) => f.id).join();
  if (select.dataset.ids !== wanted) {
    const chosen = select.value;
    select.replaceChildren(...videos.map((f) => el("option", { value: f.id, text: `${f.name} (${f.label.toUpperCase()})`, selected: f.id === chosen })));
    select.dataset.ids = wanted;
  }
  const swapJob = latest("swap", "swap"), previewJob = latest("swap", "preview");
  const frames = (j) => (j.state === "done" && j.outputs.frames !== undefined ? `${j.outputs.frames} frames, ${j.outputs.faces} faces swapped`
    : j.info.frames !== undefined ? `${j.info.frames} of ${j.info.frames_total || "?"} frames` : "");
  renderStatus(document.getElementById("swap-status"), swapJob && previewJob && previewJob.created > swapJob.created ? previewJob : swapJob || previewJob, frames);
  const figure = document.getElementById("frame-preview");
  if (previewJob && previewJob.state === "done") {
    const img = figure.querySelector("img"), src = `/api/files/${previewJob.outputs.file}`;
    if (img.getAttribute("src") !== src) img.src = src;
    figure.hidden = false;
  }
  const result = document.getElementById("result");
  if (swapJob && swapJob.state === "done") {
    const source = document.getElementById("source-video"), swapped = document.getElementById("swapped-video");
    const out = `/api/files/${swapJob.outputs.file}`;
    if (swapped.getAttribute("src") !== out) {
      swapped.src = out; source.src = `/api/files/${swapJob.inputs.video}`;
      document.getElementById("download").href = `${out}?download=true`;
    }
    result.hidden = false;
  }
  const evalJob = latest("eval", "eval");
  renderStatus(document.getElementById("eval-status"), evalJob, (j) => (j.info.frames !== undefined ? `${j.info.frames} of ${j.info.frames_total || "?"} frames` : ""));
  if (evalJob && evalJob.state === "done") {
    const frame = document.getElementById("report-frame"), src = `/api/files/${evalJob.outputs.report}`;
    if (frame.getAttribute("src") !== src) {
      frame.src = src;
      document.getElementById("report-link").href = src;
      document.getElementById("json-link").href = `/api/files/${evalJob.outputs.json}?download=true`;
    }
    document.getElementById("report").hidden = false;
  }
}

async function refresh() {
  try {
    project = await api("GET", `/api/projects/${projectId}`);
    renderFiles();
    renderTraining();
    renderSwap();
    await renderFaces();
  } catch (error) { notice(error.message); }
}

setUpDrops();
setUpTraining();
setUpSwap();
refresh();
setInterval(() => { if (!document.hidden) refresh(); }, POLL_MS);
