/**
 * bench/results/throughput.svg from bench/results/server-throughput.json: answered
 * requests per second and p99 latency against connections, one line per model ×
 * batching off/on (and on with a session per CPU), the raw pipeline's limit as a dotted line. Hand-written SVG on
 * a white background so it reads the same on light and dark pages.
 *
 * Called by server-throughput.ts; `node dist/bench/chart.js` redraws it from the JSON.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

export interface ChartInput {
  machine: { cpuModel: string; effectiveCpus: number };
  models: {
    model: string;
    limit: { imagesPerSecond: number };
    sweeps: {
      batching: 'off' | 'on';
      sessions?: number;
      points: { connections: number; requestsPerSecond: number; p99Ms: number }[];
    }[];
  }[];
}

const W = 960;
const H = 440;
const PANEL = { top: 58, bottom: 350, width: 360 };
const LEFTS = [80, 560];
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd'];
const FONT = 'font-family="Helvetica, Arial, sans-serif"';

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** 1-2-5 ticks covering [lo, hi] on a log axis. */
function logTicks(lo: number, hi: number): number[] {
  const ticks: number[] = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** e;
      if (v >= lo && v <= hi) ticks.push(v);
    }
  }
  return ticks;
}

function label(v: number): string {
  return v >= 1000 ? `${v / 1000}k` : String(v);
}

interface Axis {
  lo: number;
  hi: number;
}

function logAxis(values: number[]): Axis {
  const min = Math.min(...values.filter((v) => v > 0));
  const max = Math.max(...values);
  const steps = (v: number) => [1, 2, 5, 10].map((m) => m * 10 ** Math.floor(Math.log10(v)));
  return {
    lo: Math.max(...steps(min * 0.8).filter((s) => s <= min * 0.8)),
    hi: Math.min(...steps(max * 1.25).filter((s) => s >= max * 1.25)),
  };
}

export function renderChart(report: ChartInput): string {
  const connections = [
    ...new Set(report.models.flatMap((m) => m.sweeps.flatMap((s) => s.points.map((p) => p.connections)))),
  ].sort((a, b) => a - b);
  const x = (left: number, c: number) =>
    left + 20 + ((PANEL.width - 40) * connections.indexOf(c)) / Math.max(1, connections.length - 1);
  const y = (axis: Axis, v: number) =>
    PANEL.bottom -
    ((PANEL.bottom - PANEL.top) * (Math.log10(v) - Math.log10(axis.lo))) / (Math.log10(axis.hi) - Math.log10(axis.lo));
  const all = report.models.flatMap((m) => m.sweeps.flatMap((s) => s.points));
  const panels = [
    {
      title: 'Answered requests per second',
      unit: 'req/s (log scale)',
      value: (p: { requestsPerSecond: number }) => p.requestsPerSecond,
      axis: logAxis([...all.map((p) => p.requestsPerSecond), ...report.models.map((m) => m.limit.imagesPerSecond)]),
    },
    {
      title: 'p99 latency',
      unit: 'ms (log scale)',
      value: (p: { p99Ms: number }) => p.p99Ms,
      axis: logAxis(all.map((p) => p.p99Ms)),
    },
  ];
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" ` +
      'aria-label="Inference server throughput and p99 latency against connections">',
    `<rect width="${W}" height="${H}" fill="#ffffff"/>`,
    `<text x="${W / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold" fill="#111" ${FONT}>` +
      `POST /predict/image (224×224 JPEG), autocannon, ${esc(report.machine.cpuModel)}, ` +
      `${report.machine.effectiveCpus} CPUs</text>`,
  ];
  panels.forEach((panel, i) => {
    const left = LEFTS[i]!;
    const right = left + PANEL.width;
    out.push(
      `<text x="${left + PANEL.width / 2}" y="${PANEL.top - 12}" text-anchor="middle" font-size="14" ` +
        `font-weight="bold" fill="#111" ${FONT}>${panel.title}</text>`,
    );
    for (const t of logTicks(panel.axis.lo, panel.axis.hi)) {
      const ty = y(panel.axis, t).toFixed(1);
      out.push(`<line x1="${left}" y1="${ty}" x2="${right}" y2="${ty}" stroke="#e2e2e2"/>`);
      out.push(
        `<text x="${left - 6}" y="${ty}" dy="4" text-anchor="end" font-size="11" fill="#333" ${FONT}>` +
          `${label(t)}</text>`,
      );
    }
    for (const c of connections) {
      const tx = x(left, c).toFixed(1);
      out.push(`<line x1="${tx}" y1="${PANEL.top}" x2="${tx}" y2="${PANEL.bottom}" stroke="#f0f0f0"/>`);
      out.push(
        `<text x="${tx}" y="${PANEL.bottom + 16}" text-anchor="middle" font-size="11" fill="#333" ${FONT}>${c}</text>`,
      );
    }
    out.push(
      `<rect x="${left}" y="${PANEL.top}" width="${PANEL.width}" height="${PANEL.bottom - PANEL.top}" ` +
        'fill="none" stroke="#888"/>',
    );
    out.push(
      `<text x="${left + PANEL.width / 2}" y="${PANEL.bottom + 34}" text-anchor="middle" font-size="12" fill="#111" ` +
        `${FONT}>concurrent connections</text>`,
    );
    out.push(
      `<text transform="translate(${left - 46} ${(PANEL.top + PANEL.bottom) / 2}) rotate(-90)" ` +
        `text-anchor="middle" font-size="12" fill="#111" ${FONT}>${panel.unit}</text>`,
    );
    report.models.forEach((m, mi) => {
      const color = COLORS[mi % COLORS.length]!;
      if (i === 0) {
        const ly = y(panel.axis, m.limit.imagesPerSecond).toFixed(1);
        out.push(
          `<line x1="${left}" y1="${ly}" x2="${right}" y2="${ly}" stroke="${color}" ` +
            'stroke-width="1.5" stroke-dasharray="2 3"/>',
        );
      }
      for (const s of m.sweeps) {
        const pts = s.points
          .filter((p) => panel.value(p) > 0)
          .map((p) => `${x(left, p.connections).toFixed(1)},${y(panel.axis, panel.value(p)).toFixed(1)}`);
        const perCpu = (s.sessions ?? 1) > 1;
        const dash = s.batching === 'off' ? ' stroke-dasharray="7 4"' : perCpu ? ' stroke-dasharray="10 3 2 3"' : '';
        out.push(`<polyline points="${pts.join(' ')}" fill="none" stroke="${color}" stroke-width="2.2"${dash}/>`);
        for (const p of pts) {
          const [px, py] = p.split(',');
          if (perCpu)
            out.push(`<rect x="${Number(px) - 3.5}" y="${Number(py) - 3.5}" width="7" height="7" fill="${color}"/>`);
          else if (s.batching === 'on') out.push(`<circle cx="${px}" cy="${py}" r="3.5" fill="${color}"/>`);
          else out.push(`<circle cx="${px}" cy="${py}" r="3.5" fill="#fff" stroke="${color}" stroke-width="1.8"/>`);
        }
      }
    });
  });
  // Legend: one row per model, then the line styles.
  let ly = PANEL.bottom + 58;
  report.models.forEach((m, mi) => {
    const color = COLORS[mi % COLORS.length]!;
    const lx = 80 + mi * 440;
    out.push(`<rect x="${lx}" y="${ly - 9}" width="14" height="10" fill="${color}"/>`);
    out.push(`<text x="${lx + 20}" y="${ly}" font-size="12" fill="#111" ${FONT}>${esc(m.model)}</text>`);
  });
  ly += 20;
  const styles = [
    { text: 'batching on (MAX_BATCH_SIZE=8)', line: '', marker: 'circle', paint: 'fill="#555"' },
    {
      text: 'batching off (MAX_BATCH_SIZE=1)',
      line: ' stroke-dasharray="7 4"',
      marker: 'circle',
      paint: 'fill="#fff" stroke="#555" stroke-width="1.8"',
    },
    { text: 'batching on, SESSIONS=2', line: ' stroke-dasharray="10 3 2 3"', marker: 'square', paint: 'fill="#555"' },
    { text: 'raw pipeline (the limit)', line: ' stroke-dasharray="2 3"', marker: '', paint: '' },
  ];
  // Each item as wide as its text (about 6.6 px a character at 12 px), so long labels never overlap.
  let lx = 20;
  styles.forEach((s) => {
    out.push(
      `<line x1="${lx}" y1="${ly - 4}" x2="${lx + 30}" y2="${ly - 4}" stroke="#555" stroke-width="2"${s.line}/>`,
    );
    if (s.marker === 'circle') out.push(`<circle cx="${lx + 15}" cy="${ly - 4}" r="3.5" ${s.paint}/>`);
    if (s.marker === 'square') out.push(`<rect x="${lx + 11.5}" y="${ly - 7.5}" width="7" height="7" ${s.paint}/>`);
    out.push(`<text x="${lx + 38}" y="${ly}" font-size="12" fill="#111" ${FONT}>${s.text}</text>`);
    lx += 38 + s.text.length * 6.6 + 16;
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

export async function writeChart(report: ChartInput, path: string): Promise<void> {
  await writeFile(path, renderChart(report));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const json = fileURLToPath(new URL('../../bench/results/server-throughput.json', import.meta.url));
  const svg = fileURLToPath(new URL('../../bench/results/throughput.svg', import.meta.url));
  await writeChart(JSON.parse(await readFile(json, 'utf8')) as ChartInput, svg);
  process.stdout.write(`${svg}\n`);
}
