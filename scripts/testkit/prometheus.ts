/**
 * Reading a /metrics page in the tests and benchmarks: the Prometheus text
 * format as series (`name` or `name{labels}`) → value.
 */
export function parsePrometheus(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    const value = line.slice(i + 1);
    samples.set(line.slice(0, i), value === '+Inf' ? Infinity : value === '-Inf' ? -Infinity : Number(value));
  }
  return samples;
}

/** Fetches a /metrics URL and parses it. */
export async function scrape(url: string): Promise<Map<string, number>> {
  return parsePrometheus(await (await fetch(url)).text());
}

/** The sum of one metric's samples whose label sets include every one of `labels` (0 when none). */
export function metricSum(samples: Map<string, number>, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const [series, value] of samples) {
    const brace = series.indexOf('{');
    if ((brace < 0 ? series : series.slice(0, brace)) !== name) continue;
    const set = brace < 0 ? '' : series.slice(brace);
    if (Object.entries(labels).every(([k, v]) => set.includes(`${k}="${v}"`))) sum += value;
  }
  return sum;
}
