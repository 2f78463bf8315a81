// The browser page served at GET /. Plain HTML kept in a TypeScript string so `tsc` carries it
// into dist/ (and the container image) with no copy step. {{MODEL_NAME}} is replaced, HTML-escaped,
// by page-router.ts. No inline script or style: the Content-Security-Policy forbids both.
export const INDEX_HTML = String.raw`<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <meta name="color-scheme" content="light dark">
  <meta name="model-name" content="{{MODEL_NAME}}">
  <title>Image classifier · {{MODEL_NAME}}</title>
  <link rel="icon" href="/favicon.svg" type="image/svg+xml">
  <link rel="stylesheet" href="/page.css">
  <script type="module" src="/page.js"></script>
</head>
<body>
  <header class="top">
    <div class="wrap">
      <h1>Image classifier</h1>
      <p id="model-info" class="model-info">Model <strong>{{MODEL_NAME}}</strong></p>
    </div>
  </header>

  <main class="wrap layout">
    <section class="card" aria-labelledby="image-heading">
      <h2 id="image-heading">Image</h2>
      <div id="drop-zone" class="drop-zone">
        <img id="preview" class="preview" alt="" hidden>
        <div id="placeholder" class="placeholder">
          <svg class="placeholder-icon" viewBox="0 0 24 24" aria-hidden="true" focusable="false">
            <path d="M4 5h16v14H4z M4 16l5-5 4 4 3-3 4 4" fill="none" stroke="currentColor" stroke-width="1.5" stroke-linejoin="round"/>
            <circle cx="15.5" cy="9" r="1.5" fill="currentColor"/>
          </svg>
          <p id="placeholder-text">Drop an image here, or paste one with <kbd>Ctrl</kbd>+<kbd>V</kbd></p>
        </div>
      </div>
      <div class="picker">
        <input type="file" id="file" name="image_file" accept="image/*" class="visually-hidden" aria-describedby="file-hint">
        <label for="file" class="button">Choose an image…</label>
        <span id="file-name" class="file-name" aria-live="polite">No file chosen</span>
      </div>
      <p id="file-hint" class="hint">JPEG, PNG, WebP, GIF, TIFF or AVIF. The image is sent to this server only.</p>
    </section>

    <section id="results-card" class="card" aria-labelledby="results-heading" aria-busy="false">
      <h2 id="results-heading">Top 5</h2>
      <p id="status" class="status" role="status">Pick an image to classify it.</p>
      <div id="error" class="error" role="alert" hidden></div>
      <ol id="results" class="results" aria-label="Predicted labels, most likely first"></ol>
      <p id="latency" class="latency" hidden></p>
    </section>
  </main>

  <footer class="wrap footer">
    This page uses the server's public HTTP API:
    <code id="predict-call">POST /predict/image?top_k=5</code>,
    <a href="/v2"><code>GET /v2</code></a> and
    <a id="model-link" href="/v2/models/{{MODEL_NAME_URL}}"><code>GET /v2/models/{{MODEL_NAME}}</code></a>.
  </footer>
</body>
</html>
`;
