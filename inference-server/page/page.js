// The page's script, served at /page.js as an ES module: plain browser JavaScript, no build
// step, using only the public HTTP API (linted by npm run lint with the browser's globals).
'use strict';

const MAX_ROWS = 5;
const byId = (id) => document.getElementById(id);
const el = {
  modelInfo: byId('model-info'),
  drop: byId('drop-zone'),
  preview: byId('preview'),
  placeholder: byId('placeholder'),
  placeholderText: byId('placeholder-text'),
  file: byId('file'),
  fileName: byId('file-name'),
  card: byId('results-card'),
  heading: byId('results-heading'),
  predictCall: byId('predict-call'),
  status: byId('status'),
  error: byId('error'),
  results: byId('results'),
  latency: byId('latency'),
};
const modelName = document.querySelector('meta[name="model-name"]').content;

/** How many rows to ask for: five, fewer when the model has fewer classes (or the server caps top_k lower). */
let topK = MAX_ROWS;
/** The request in flight; a newer image aborts it. */
let inFlight = null;
let previewUrl = null;

function node(tag, className, text) {
  const n = document.createElement(tag);
  if (className) n.className = className;
  if (text !== undefined) n.textContent = text;
  return n;
}

function formatMs(ms) {
  return (ms < 10 ? ms.toFixed(1) : String(Math.round(ms))) + ' ms';
}

function formatBytes(n) {
  if (n < 1024) return n + ' B';
  if (n < 1024 * 1024) return (n / 1024).toFixed(n < 10 * 1024 ? 1 : 0) + ' KB';
  return (n / 1024 / 1024).toFixed(1) + ' MB';
}

/** GET a JSON document; a non-2xx answer throws with the server's {error} message and the status. */
async function getJson(url) {
  const res = await fetch(url, { headers: { Accept: 'application/json' } });
  let body = null;
  try {
    body = await res.json();
  } catch {
    // not JSON
  }
  if (!res.ok) {
    const err = new Error(body && typeof body.error === 'string' ? body.error : res.status + ' ' + res.statusText);
    err.status = res.status;
    throw err;
  }
  return body;
}

// ---- Model and server metadata (GET /v2, GET /v2/models/{name}) ----

function inputSize(input, layout) {
  const shape = input && Array.isArray(input.shape) ? input.shape : [];
  if (shape.length !== 4) return '';
  const [h, w] = layout === 'NHWC' ? [shape[1], shape[2]] : [shape[2], shape[3]];
  return h > 0 && w > 0 ? w + '×' + h : '';
}

async function loadInfo(attempt) {
  const modelPath = '/v2/models/' + encodeURIComponent(modelName);
  let server = null;
  try {
    server = await getJson('/v2');
  } catch {
    // optional: the model line is what matters
  }
  try {
    const model = await getJson(modelPath);
    const output = model.outputs && model.outputs[0];
    const classes = output && Array.isArray(output.shape) ? Number(output.shape[output.shape.length - 1]) : 0;
    if (classes > 0) setTopK(Math.min(MAX_ROWS, classes));
    const layout = model.parameters && model.parameters.layout;
    const parts = [];
    const size = inputSize(model.inputs && model.inputs[0], layout);
    if (size) parts.push('input ' + size + (layout ? ' ' + layout : ''));
    if (classes > 0) parts.push(classes.toLocaleString('en') + ' classes');
    if (server && server.name) parts.push('served by ' + server.name + (server.version ? ' ' + server.version : ''));
    showModelInfo(parts);
  } catch (err) {
    if (err.status === 503 && attempt < 150) {
      showModelInfo(['loading…']);
      setTimeout(() => loadInfo(attempt + 1), 2000);
      return;
    }
    showModelInfo(['metadata unavailable: ' + err.message]);
  }
}

function showModelInfo(parts) {
  el.modelInfo.replaceChildren('Model ', node('strong', '', modelName));
  for (const part of parts) el.modelInfo.append(' · ' + part);
}

function setTopK(k) {
  topK = k;
  el.heading.textContent = 'Top ' + k;
  el.predictCall.textContent = 'POST /predict/image?top_k=' + k;
}

// ---- Choosing an image: file picker, drag and drop, paste ----

function showPreview(file) {
  if (previewUrl) URL.revokeObjectURL(previewUrl);
  previewUrl = null;
  el.fileName.textContent = (file.name || 'pasted image') + ' · ' + formatBytes(file.size);
  if (file.type.startsWith('image/')) {
    previewUrl = URL.createObjectURL(file);
    el.preview.alt = 'Preview of ' + (file.name || 'the pasted image');
    el.preview.src = previewUrl;
    el.preview.hidden = false;
    el.placeholder.hidden = true;
    el.drop.classList.add('has-image');
  } else {
    noPreview(file.type ? 'No preview for ' + file.type : 'No preview for this file');
  }
}

function noPreview(message) {
  el.preview.hidden = true;
  el.preview.removeAttribute('src');
  el.preview.alt = '';
  el.placeholder.hidden = false;
  el.placeholderText.textContent = message;
  el.drop.classList.remove('has-image');
}

el.preview.addEventListener('load', () => {
  if (el.preview.naturalWidth > 0) el.fileName.append(' · ' + el.preview.naturalWidth + '×' + el.preview.naturalHeight);
});
el.preview.addEventListener('error', () => {
  // A format the browser cannot show (TIFF, say) may still be one the server reads.
  if (el.preview.getAttribute('src'))
    noPreview('This browser cannot preview the image; it is still sent to the server');
});

el.file.addEventListener('change', () => {
  const file = el.file.files && el.file.files[0];
  if (file) classify(file);
});
// A mouse shortcut to the picker; keyboard users have the labelled button below the zone.
el.drop.addEventListener('click', () => el.file.click());

function hasFiles(event) {
  return event.dataTransfer && Array.from(event.dataTransfer.types).includes('Files');
}
// The whole window takes a drop (a near miss must not navigate away to the file); the zone lights up.
let dragDepth = 0;
window.addEventListener('dragenter', (event) => {
  if (!hasFiles(event)) return;
  dragDepth++;
  el.drop.classList.add('dragging');
});
window.addEventListener('dragleave', (event) => {
  if (!hasFiles(event)) return;
  dragDepth = Math.max(0, dragDepth - 1);
  if (dragDepth === 0) el.drop.classList.remove('dragging');
});
window.addEventListener('dragover', (event) => {
  if (!hasFiles(event)) return;
  event.preventDefault();
  event.dataTransfer.dropEffect = 'copy';
});
window.addEventListener('drop', (event) => {
  if (!hasFiles(event)) return;
  event.preventDefault();
  dragDepth = 0;
  el.drop.classList.remove('dragging');
  const file = event.dataTransfer.files[0];
  if (file) classify(file);
});

document.addEventListener('paste', (event) => {
  const files = event.clipboardData ? Array.from(event.clipboardData.files) : [];
  const file = files.find((f) => f.type.startsWith('image/')) || files[0];
  if (!file) return;
  event.preventDefault();
  classify(file);
});

// ---- Classifying: POST /predict/image?top_k=N ----

function parseServerTiming(header) {
  const out = {};
  if (!header) return out;
  for (const entry of header.split(',')) {
    const [name, ...params] = entry.trim().split(';');
    for (const param of params) {
      const [key, value] = param.trim().split('=');
      if (key === 'dur' && name && Number.isFinite(Number(value))) out[name.trim()] = Number(value);
    }
  }
  return out;
}

function setBusy(busy) {
  el.card.setAttribute('aria-busy', String(busy));
  el.status.classList.toggle('working', busy);
  el.results.classList.toggle('stale', busy);
}

function showError(status, message) {
  el.results.replaceChildren();
  el.latency.hidden = true;
  el.status.textContent = 'No result.';
  const title =
    status === 415
      ? 'The server cannot read this file'
      : status === 413
        ? 'The file is too large'
        : status === 503
          ? 'The server is busy or still loading the model'
          : 'The request failed';
  el.error.replaceChildren(
    node('strong', '', title + (status ? ' (HTTP ' + status + ')' : '')),
    node('span', 'error-message', message),
  );
  el.error.hidden = false;
}

function renderResults(predictions) {
  const rows = predictions.map((p) => {
    const score = Math.min(1, Math.max(0, Number(p.Score) || 0));
    const pct = (score * 100).toFixed(1) + '%';
    const li = node('li', 'result');
    const bar = node('span', 'bar');
    bar.setAttribute('aria-hidden', 'true');
    const fill = node('span', 'fill');
    fill.style.width = pct;
    bar.append(fill);
    li.append(node('span', 'label', p.Label), node('span', 'score', pct), bar);
    return li;
  });
  el.results.replaceChildren(...rows);
}

function renderLatency(roundTripMs, timing) {
  const chip = (name, ms) => {
    const c = node('span', 'chip', name + ' ');
    c.append(node('b', '', formatMs(ms)));
    return c;
  };
  const chips = [chip('Round trip', roundTripMs)];
  if (timing.decode !== undefined) chips.push(chip('Server decode', timing.decode));
  if (timing.infer !== undefined) chips.push(chip('Inference', timing.infer));
  el.latency.replaceChildren(...chips);
  el.latency.hidden = false;
}

async function classify(file, retried) {
  if (inFlight) inFlight.abort();
  const controller = new AbortController();
  inFlight = controller;
  if (!retried) showPreview(file);
  el.error.hidden = true;
  el.status.textContent = 'Classifying…';
  setBusy(true);

  const form = new FormData();
  form.append('image_file', file, file.name || 'pasted-image');
  const started = performance.now();
  try {
    const res = await fetch('/predict/image?top_k=' + topK, { method: 'POST', body: form, signal: controller.signal });
    const text = await res.text();
    const elapsed = performance.now() - started;
    if (controller !== inFlight) return;
    let body = null;
    try {
      body = JSON.parse(text);
    } catch {
      // not JSON: shown as text below
    }
    if (!res.ok) {
      const message = body && typeof body.error === 'string' ? body.error : text.trim().slice(0, 300) || res.statusText;
      // The server may cap top_k below five (MAX_TOP_K): ask again for what it allows.
      const cap = res.status === 400 && !retried ? /top_k must be an integer from 1 to (\d+)/.exec(message) : null;
      if (cap && Number(cap[1]) >= 1 && Number(cap[1]) < topK) {
        setTopK(Number(cap[1]));
        inFlight = null;
        return classify(file, true);
      }
      showError(res.status, message);
      return;
    }
    if (!Array.isArray(body) || body.length === 0) {
      showError(res.status, 'unexpected answer: ' + text.slice(0, 200));
      return;
    }
    renderResults(body);
    renderLatency(elapsed, parseServerTiming(res.headers.get('Server-Timing')));
    el.status.textContent = 'Most likely: ' + body[0].Label + ' (' + (Number(body[0].Score) * 100).toFixed(1) + '%)';
  } catch (err) {
    if (err.name === 'AbortError') return;
    showError(0, 'Could not reach the server: ' + err.message);
  } finally {
    if (controller === inFlight) {
      inFlight = null;
      setBusy(false);
    }
  }
}

loadInfo(0);
