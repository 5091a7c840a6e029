// Small shared helpers for the benchmarks: timing (warm-up, then the median of N runs), argument
// parsing, number formatting and a plain-text table printer. No dependencies beyond Node.
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';

export interface Timing {
  /** Median of the timed runs, in seconds. */
  median: number;
  min: number;
  max: number;
  /** Every timed run, in seconds, in the order run. */
  runs: number[];
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new Error('median of no values');
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Seconds taken by one call of fn. */
export async function timeOnce(fn: () => unknown): Promise<number> {
  const t0 = performance.now();
  await fn();
  return (performance.now() - t0) / 1000;
}

/** Runs fn `warmup` times untimed, then `runs` times timed; returns the median and the spread. */
export async function bench(fn: () => unknown, opts: { warmup?: number; runs?: number } = {}): Promise<Timing> {
  const warmup = opts.warmup ?? 1;
  const n = opts.runs ?? 3;
  if (!Number.isInteger(n) || n < 1) throw new Error(`runs must be a positive integer, got ${n}`);
  for (let i = 0; i < warmup; i++) await fn();
  const runs: number[] = [];
  for (let i = 0; i < n; i++) runs.push(await timeOnce(fn));
  return { median: median(runs), min: Math.min(...runs), max: Math.max(...runs), runs };
}

/** `--name value` / `--flag` arguments into a map; unknown names are an error listing the known ones. */
export function parseArgs(argv: readonly string[], spec: Record<string, 'string' | 'number' | 'boolean'>): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  const known = Object.keys(spec).map((k) => `--${k}`).join(', ');
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--help' || a === '-h') {
      out.help = true;
      continue;
    }
    if (!a.startsWith('--')) throw new Error(`unexpected argument "${a}"; options: ${known}`);
    const [name, inline] = a.slice(2).split('=', 2);
    const kind = spec[name];
    if (!kind) throw new Error(`unknown option --${name}; options: ${known}`);
    if (kind === 'boolean') {
      out[name] = true;
      continue;
    }
    const raw = inline ?? argv[++i];
    if (raw === undefined) throw new Error(`--${name} needs a value`);
    if (kind === 'number') {
      const v = Number(raw);
      if (!Number.isFinite(v)) throw new Error(`--${name} must be a number, got "${raw}"`);
      out[name] = v;
    } else {
      out[name] = raw;
    }
  }
  return out;
}

/** 1234567 -> "1.23 M"; SI prefixes, 3 significant digits. */
export function si(x: number, unit = ''): string {
  const prefixes: [number, string][] = [[1e12, 'T'], [1e9, 'G'], [1e6, 'M'], [1e3, 'k']];
  for (const [scale, p] of prefixes) if (Math.abs(x) >= scale) return `${(x / scale).toPrecision(3)} ${p}${unit}`;
  return `${x.toPrecision(3)} ${unit}`.trimEnd();
}

export const seconds = (s: number): string => (s >= 1 ? `${s.toFixed(2)} s` : `${(s * 1000).toFixed(1)} ms`);
export const pct = (f: number): string => `${(100 * f).toFixed(1)}%`;
export const gib = (bytes: number): string => `${(bytes / 2 ** 30).toFixed(2)} GiB`;

/** Prints rows as an aligned table: text columns left-aligned, numeric-looking ones right-aligned. */
export function printTable(headers: readonly string[], rows: ReadonlyArray<ReadonlyArray<string | number>>, out: (s: string) => void = console.log): void {
  const cells = [headers.map(String), ...rows.map((r) => r.map(String))];
  const widths = headers.map((_, c) => Math.max(...cells.map((r) => (r[c] ?? '').length)));
  const numeric = headers.map((_, c) => rows.every((r) => /^[-+]?[\d.]/.test(String(r[c] ?? ''))));
  const line = (r: readonly string[]) =>
    r.map((v, c) => (numeric[c] ? v.padStart(widths[c]) : v.padEnd(widths[c]))).join('  ').trimEnd();
  out(line(cells[0]));
  out(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of cells.slice(1)) out(line(r));
}

/** Resident set size of this process, in bytes. */
export const rss = (): number => process.memoryUsage().rss;

/** CPU seconds (user + system, all threads) this process has used so far. */
export function cpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** The 1-minute load average now (other processes compete for the cores when it exceeds their count). */
export const load1 = (): number => loadavg()[0];

