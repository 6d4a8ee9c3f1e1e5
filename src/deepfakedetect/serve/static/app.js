// The page of `deepfakedetect serve`: upload a file, show what the server answered.
// Plain JavaScript, no libraries, nothing fetched from elsewhere. Untrusted text is
// only ever set with textContent, never parsed as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
let limits = null;
let objectUrl = null;

function svgEl(name, attrs, parent) {
  const el = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (parent) parent.appendChild(el);
  return el;
}

function setStatus(text, isError) {
  const s = $("status");
  s.textContent = text;
  s.classList.toggle("error", Boolean(isError));
}

function pct(x) {
  return (100 * x).toFixed(1) + "%";
}

async function loadModel() {
  try {
    const r = await fetch("/v1/model");
    const m = await r.json();
    limits = m.limits;
    const src = m.model && m.model.source ? m.model.source : "?";
    $("model-info").textContent =
      `model ${src} (${m.model.backbone}, ${m.backend}) · threshold ${m.threshold.toFixed(3)} · ` +
      `faces ${m.face_stage ? "cropped" : "not cropped"} · deepfakedetect ${m.library_version} · ` +
      `up to ${(limits.max_upload_bytes / 1048576).toFixed(0)} MB, videos up to ${limits.max_video_seconds} s`;
    for (const [id, names] of [["sampler", m.samplers], ["aggregator", m.aggregators]]) {
      for (const n of names) {
        const o = document.createElement("option");
        o.value = n;
        o.textContent = n;
        $(id).appendChild(o);
      }
    }
    if (!m.explain) {
      $("explain").checked = false;
      $("explain").disabled = true;
    }
  } catch (e) {
    $("model-info").textContent = "could not read /v1/model: " + e;
  }
}

async function send(file) {
  if (!file) return;
  if (limits && file.size > limits.max_upload_bytes) {
    setStatus(`${file.name} is ${(file.size / 1048576).toFixed(1)} MB, above this server's limit`, true);
    return;
  }
  const form = new FormData();
  form.append("file", file, file.name);
  if ($("sampler").value) form.append("sampler", $("sampler").value);
  if ($("aggregator").value) form.append("aggregator", $("aggregator").value);
  if ($("people-rule").value) form.append("people", $("people-rule").value);
  form.append("explain", $("explain").checked ? "true" : "false");
  setStatus(`scoring ${file.name}…`);
  $("result").hidden = true;
  document.body.dataset.state = "busy";
  let r;
  try {
    r = await fetch("/v1/detect", { method: "POST", body: form });
  } catch (e) {
    setStatus("the server could not be reached: " + e, true);
    document.body.dataset.state = "error";
    return;
  }
  const body = await r.json().catch(() => ({ error: "BadResponse", detail: "the answer was not JSON" }));
  if (!r.ok) {
    const retry = r.headers.get("Retry-After");
    setStatus(`${body.error}: ${body.detail}` + (retry ? ` (retry in ${retry} s)` : ""), true);
    document.body.dataset.state = "error";
    return;
  }
  setStatus("");
  show(file, body);
  document.body.dataset.state = "done";
}

function show(file, res) {
  $("result").hidden = false;
  const label = res.verdict || res.label || (res.status === "no_face" ? "no face" : "?");
  const v = $("verdict");
  v.textContent = label;
  v.className = "verdict " + String(label).replace(/[^a-z]/g, "");
  if (res.fake_score === null || res.fake_score === undefined) {
    $("score-text").textContent = res.status === "no_face" ? "No face was found, so nothing was scored." : "Not scored.";
    $("score-fill").hidden = true;
  } else {
    $("score-fill").hidden = false;
    $("score-text").textContent = `fake score ${res.fake_score.toFixed(3)} (${pct(res.fake_score)}), threshold ${res.threshold.toFixed(3)}`;
    $("score-fill").style.left = `calc(${pct(res.fake_score)} - 2px)`;
  }
  $("score-thr").style.left = pct(res.threshold);
  $("uncertainty").textContent = uncertaintyText(res);

  const url = URL.createObjectURL(file);
  if (objectUrl) URL.revokeObjectURL(objectUrl);
  objectUrl = url;
  $("image-view").hidden = res.media !== "image";
  $("video-view").hidden = res.media !== "video";
  if (res.media === "image") showImage(url, res);
  else showVideo(url, res);

  const text = JSON.stringify(res, (k, val) => (k === "overlay" ? val.slice(0, 40) + "…" : val), 2);
  $("json").textContent = text;
  $("download").href = URL.createObjectURL(new Blob([JSON.stringify(res, null, 2)], { type: "application/json" }));
}

function uncertaintyText(res) {
  const parts = [];
  if (res.uncertainty !== undefined && res.uncertainty !== null) parts.push(`uncertainty ${JSON.stringify(res.uncertainty)}`);
  if (res.fake_score !== null && res.fake_score !== undefined) {
    const margin = res.fake_score - res.threshold;
    parts.push(`${Math.abs(margin).toFixed(3)} ${margin >= 0 ? "above" : "below"} the threshold`);
  }
  if (res.media === "video" && res.num_decoded !== undefined) {
    parts.push(`${res.num_decoded} frames scored, ${res.frames_without_faces || 0} without a face`);
  }
  if (res.media === "image" && res.faces) parts.push(`${res.faces.length} face(s)`);
  return parts.join(" · ");
}

function showImage(url, res) {
  const img = $("preview");
  const svg = $("boxes");
  img.onload = () => {
    const w = res.image ? res.image.width : img.naturalWidth;
    const h = res.image ? res.image.height : img.naturalHeight;
    svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
    svg.setAttribute("preserveAspectRatio", "none");
    svg.replaceChildren();
    (res.faces || []).forEach((f, i) => {
      const [x1, y1, x2, y2] = f.box;
      const cls = f.fake_score >= res.threshold ? "fake" : "real";
      svgEl("rect", { class: `box ${cls}`, x: x1, y: y1, width: x2 - x1, height: y2 - y1 }, svg);
      const t = svgEl("text", { class: `boxlabel ${cls}`, x: x1 + 2, y: Math.max(14, y1 - 4) }, svg);
      t.textContent = `#${i + 1} ${f.fake_score.toFixed(2)}`;
    });
  };
  img.src = url;
  const box = $("overlays");
  box.replaceChildren();
  const exps = res.explanations || [];
  $("overlay-title").hidden = exps.length === 0;
  for (const e of exps) {
    const fig = document.createElement("figure");
    const im = document.createElement("img");
    im.className = "overlay";
    im.alt = `Grad-CAM overlay, face ${e.face_index + 1}`;
    im.src = e.overlay;
    const cap = document.createElement("figcaption");
    cap.textContent = (e.box ? `face #${e.face_index + 1}` : "whole image") + `: fake ${e.fake_score.toFixed(3)}`;
    fig.append(im, cap);
    box.appendChild(fig);
  }
}

function showVideo(url, res) {
  const player = $("player");
  player.src = url;
  const svg = $("plot");
  svg.replaceChildren();
  const W = 1000, H = 220, L = 40, R = 10, T = 10, B = 26;
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("preserveAspectRatio", "none");
  const frames = res.frames || [];
  const duration = (res.video && res.video.duration) || (frames.length ? frames[frames.length - 1].timestamp : 1) || 1;
  const x = (t) => L + (W - L - R) * (t / duration);
  const y = (s) => T + (H - T - B) * (1 - s);
  for (const seg of res.segments || []) {
    svgEl("rect", { class: "seg", x: x(seg.start), y: T, width: Math.max(2, x(seg.end) - x(seg.start)), height: H - T - B }, svg);
  }
  svgEl("line", { class: "thr", x1: L, x2: W - R, y1: y(res.threshold), y2: y(res.threshold) }, svg);
  for (const s of [0, 0.5, 1]) {
    const t = svgEl("text", { class: "axis", x: 4, y: y(s) + 4 }, svg);
    t.textContent = s.toFixed(1);
  }
  for (let k = 0; k <= 4; k++) {
    const anchor = k === 0 ? "start" : k === 4 ? "end" : "middle";
    const t = svgEl("text", { class: "axis", x: x((duration * k) / 4), y: H - 8, "text-anchor": anchor }, svg);
    t.textContent = ((duration * k) / 4).toFixed(1) + "s";
  }
  const scored = frames.filter((f) => f.fake_score !== null);
  if (scored.length) {
    svgEl("polyline", { class: "line", points: scored.map((f) => `${x(f.timestamp)},${y(f.fake_score)}`).join(" ") }, svg);
  }
  for (const f of frames) {
    const c = svgEl("circle", { class: f.fake_score === null ? "dot noface" : "dot", cx: x(f.timestamp), cy: y(f.fake_score === null ? 0 : f.fake_score), r: 3 }, svg);
    const tip = svgEl("title", {}, c);
    tip.textContent = `frame ${f.index} at ${f.timestamp.toFixed(2)} s: ` + (f.fake_score === null ? "no face" : f.fake_score.toFixed(3));
  }
  const cursor = svgEl("line", { class: "cursor", x1: L, x2: L, y1: T, y2: H - B }, svg);
  player.ontimeupdate = () => {
    cursor.setAttribute("x1", x(player.currentTime));
    cursor.setAttribute("x2", x(player.currentTime));
  };
  svg.onclick = (ev) => {
    const rect = svg.getBoundingClientRect();
    const t = (((ev.clientX - rect.left) / rect.width) * W - L) / (W - L - R) * duration;
    player.currentTime = Math.min(Math.max(0, t), duration);
  };
  showPeople(res.people);
}

function showPeople(people) {
  const box = $("people");
  box.replaceChildren();
  if (!Array.isArray(people) || people.length === 0) return;
  const h = document.createElement("h2");
  h.textContent = "People";
  const table = document.createElement("table");
  const head = table.insertRow();
  for (const name of ["person", "verdict", "fake score", "seen"]) {
    const th = document.createElement("th");
    th.textContent = name;
    head.appendChild(th);
  }
  people.forEach((p, i) => {
    const row = table.insertRow();
    const seen = p.start !== undefined && p.end !== undefined ? `${Number(p.start).toFixed(1)}–${Number(p.end).toFixed(1)} s` : (p.num_frames !== undefined ? `${p.num_frames} frames` : "");
    const score = typeof p.fake_score === "number" ? p.fake_score.toFixed(3) : "–";
    for (const text of [p.id !== undefined ? String(p.id) : String(i + 1), p.verdict || p.label || "", score, seen]) {
      row.insertCell().textContent = text;
    }
  });
  box.append(h, table);
}

function setup() {
  const drop = $("drop");
  const input = $("file");
  input.addEventListener("change", () => send(input.files[0]));
  for (const ev of ["dragenter", "dragover"]) {
    drop.addEventListener(ev, (e) => {
      e.preventDefault();
      drop.classList.add("over");
    });
  }
  for (const ev of ["dragleave", "drop"]) {
    drop.addEventListener(ev, (e) => {
      e.preventDefault();
      drop.classList.remove("over");
    });
  }
  drop.addEventListener("drop", (e) => send(e.dataTransfer.files[0]));
  loadModel();
}

document.addEventListener("DOMContentLoaded", setup);
