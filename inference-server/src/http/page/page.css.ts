// The page's stylesheet, served at /page.css (see index.html.ts for why it is a TypeScript string).
export const PAGE_CSS = String.raw`:root {
  color-scheme: light dark;
  --bg: #f4f6f9;
  --card: #ffffff;
  --text: #18202a;
  --muted: #5a6675;
  --border: #dbe1e8;
  --accent: #2457d6;
  --accent-text: #ffffff;
  --accent-soft: #e3ebfd;
  --bar-bg: #e9edf3;
  --bar: #7d9be6;
  --error: #a4161a;
  --error-bg: #fdeced;
  --error-border: #f3b7ba;
  --shadow: 0 1px 2px rgb(16 24 40 / 6%), 0 4px 16px rgb(16 24 40 / 6%);
  --radius: 12px;
  --mono: ui-monospace, "SFMono-Regular", "DejaVu Sans Mono", Menlo, Consolas, monospace;
}

@media (prefers-color-scheme: dark) {
  :root {
    --bg: #0e1116;
    --card: #161b22;
    --text: #e4e8ee;
    --muted: #9aa5b4;
    --border: #2b323c;
    --accent: #6ea2ff;
    --accent-text: #0b1220;
    --accent-soft: #1b2a45;
    --bar-bg: #232a34;
    --bar: #4a6fb8;
    --error: #ffb3b0;
    --error-bg: #3a1518;
    --error-border: #6b2a2f;
    --shadow: 0 1px 2px rgb(0 0 0 / 40%);
  }
}

*, *::before, *::after { box-sizing: border-box; }
[hidden] { display: none !important; }

html { -webkit-text-size-adjust: 100%; }
body {
  margin: 0;
  background: var(--bg);
  color: var(--text);
  font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "DejaVu Sans", sans-serif;
}

.wrap { width: min(100% - 2rem, 980px); margin-inline: auto; }

a { color: var(--accent); }
code, kbd { font-family: var(--mono); font-size: 0.875em; }
kbd {
  padding: 0 0.3em;
  border: 1px solid var(--border);
  border-bottom-width: 2px;
  border-radius: 4px;
  background: var(--card);
}

:focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }

.visually-hidden {
  position: absolute;
  width: 1px;
  height: 1px;
  margin: -1px;
  padding: 0;
  overflow: hidden;
  clip: rect(0 0 0 0);
  clip-path: inset(50%);
  white-space: nowrap;
  border: 0;
}

/* Header */
.top { padding: 1.75rem 0 1.25rem; }
.top h1 { margin: 0; font-size: 1.6rem; line-height: 1.2; letter-spacing: -0.01em; }
.model-info { margin: 0.35rem 0 0; color: var(--muted); font-size: 0.95rem; }
.model-info strong { color: var(--text); font-weight: 600; }

/* Two cards side by side on wide screens, stacked on narrow ones */
.layout {
  display: grid;
  grid-template-columns: minmax(0, 1fr) minmax(0, 1fr);
  gap: 1.25rem;
  align-items: start;
}
@media (max-width: 760px) {
  .layout { grid-template-columns: minmax(0, 1fr); }
}

.card {
  background: var(--card);
  border: 1px solid var(--border);
  border-radius: var(--radius);
  box-shadow: var(--shadow);
  padding: 1.25rem;
}
.card h2 {
  margin: 0 0 0.9rem;
  font-size: 0.8rem;
  font-weight: 700;
  letter-spacing: 0.08em;
  text-transform: uppercase;
  color: var(--muted);
}

/* Image side */
.drop-zone {
  position: relative;
  display: grid;
  place-items: center;
  aspect-ratio: 4 / 3;
  border: 2px dashed var(--border);
  border-radius: 10px;
  background: var(--bg);
  overflow: hidden;
  cursor: pointer;
  transition: border-color 0.15s, background-color 0.15s;
}
.drop-zone:hover, .drop-zone.dragging { border-color: var(--accent); }
.drop-zone.dragging { background: var(--accent-soft); }
.drop-zone.has-image { border-style: solid; }
.preview { width: 100%; height: 100%; object-fit: contain; display: block; }
.placeholder { padding: 1rem; text-align: center; color: var(--muted); }
.placeholder p { margin: 0.25rem 0 0; }
.placeholder-icon { width: 48px; height: 48px; opacity: 0.7; }

.picker { display: flex; align-items: center; gap: 0.75rem; flex-wrap: wrap; margin-top: 1rem; }
.button {
  display: inline-flex;
  align-items: center;
  padding: 0.55rem 1rem;
  border-radius: 8px;
  background: var(--accent);
  color: var(--accent-text);
  font-weight: 600;
  cursor: pointer;
  user-select: none;
}
.button:hover { filter: brightness(1.08); }
/* The real input is visually hidden; its label is the button, so the focus ring goes there. */
.visually-hidden:focus-visible + .button { outline: 3px solid var(--accent); outline-offset: 3px; }
.file-name { flex: 1 1 10rem; min-width: 0; color: var(--muted); font-size: 0.9rem; overflow-wrap: anywhere; }
.hint { margin: 0.6rem 0 0; color: var(--muted); font-size: 0.85rem; }

/* Results side */
.status { margin: 0 0 0.75rem; color: var(--muted); }
.status.working::before {
  content: "";
  display: inline-block;
  width: 0.8em;
  height: 0.8em;
  margin-right: 0.5em;
  vertical-align: -0.05em;
  border: 2px solid var(--border);
  border-top-color: var(--accent);
  border-radius: 50%;
  animation: spin 0.8s linear infinite;
}
@keyframes spin { to { transform: rotate(360deg); } }

.error {
  margin: 0 0 0.75rem;
  padding: 0.75rem 0.9rem;
  border: 1px solid var(--error-border);
  border-radius: 8px;
  background: var(--error-bg);
  color: var(--error);
  overflow-wrap: anywhere;
}
.error strong { display: block; margin-bottom: 0.15rem; }

.results { list-style: none; margin: 0; padding: 0; display: grid; gap: 0.8rem; }
.results.stale { opacity: 0.45; }
.result {
  display: grid;
  grid-template-columns: minmax(0, 1fr) auto;
  column-gap: 0.75rem;
  row-gap: 0.3rem;
  align-items: baseline;
}
.result .label { overflow-wrap: anywhere; }
.result .score { font-variant-numeric: tabular-nums; color: var(--muted); font-size: 0.9rem; }
.result .bar {
  grid-column: 1 / -1;
  height: 10px;
  border-radius: 999px;
  background: var(--bar-bg);
  overflow: hidden;
}
.result .fill {
  display: block;
  height: 100%;
  width: 0;
  min-width: 2px;
  border-radius: inherit;
  background: var(--bar);
  transition: width 0.35s ease-out;
}
.result:first-child .label { font-weight: 650; font-size: 1.1rem; }
.result:first-child .score { color: var(--text); font-weight: 600; }
.result:first-child .fill { background: var(--accent); }

.latency {
  display: flex;
  flex-wrap: wrap;
  gap: 0.4rem;
  margin: 1.1rem 0 0;
  padding-top: 0.9rem;
  border-top: 1px solid var(--border);
  font-size: 0.85rem;
}
.chip {
  padding: 0.15rem 0.55rem;
  border-radius: 999px;
  background: var(--bar-bg);
  color: var(--muted);
  font-variant-numeric: tabular-nums;
}
.chip b { color: var(--text); font-weight: 600; }

.footer { margin-top: 1.5rem; padding-bottom: 2rem; color: var(--muted); font-size: 0.85rem; }

@media (prefers-reduced-motion: reduce) {
  .result .fill, .drop-zone { transition: none; }
  .status.working::before { animation: none; }
}
`;
