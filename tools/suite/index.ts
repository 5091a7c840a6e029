// The standard experiments as one command: each writes a Markdown report with SVG plots, ids and
// SQL; an index links them. On gpt-oss-tiny each report is scored against the manifest.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ToolError, type ToolContext } from '../define.ts';
import { causalTracing } from './experiments/causal-tracing.ts';
import { circuitGrowth } from './experiments/circuit-growth.ts';
import { entanglement } from './experiments/entanglement.ts';
import { featureLocalisation } from './experiments/feature-localisation.ts';
import { steering } from './experiments/steering.ts';
import { sqlBlock, table } from './markdown.ts';
import { renderPng } from './plots.ts';
import { loadSuitePrompts } from './prompts.ts';
import { NotRunnable } from './compare.ts';
import { modelLabel } from '../workspace.ts';
import { scoreReport } from './score.ts';
import type { Experiment, ExperimentReport, Reproduce, SuiteEnv } from './types.ts';

export const EXPERIMENTS: readonly Experiment[] = [causalTracing, featureLocalisation, steering, circuitGrowth, entanglement];

export interface SuiteOptions {
  ctx: ToolContext;
  modelDir: string;
  outDir: string;
  only?: number[];
  openOther?: SuiteEnv['openOther'];
  /** Called at every step: experiment index, its title and what it is doing. */
  onStep?: (e: { experiment: number; of: number; title: string; message: string }) => void;
}

export interface SuiteResult {
  outDir: string;
  /** `notRun`: why the experiment could not run here (NotRunnable); `failed`: it threw (a bug or a refusal). */
  reports: { id: number; file: string; title: string; conclusion: string; score?: { ok: number; total: number }; notRun?: string; failed?: string; reproduce?: Required<Reproduce>[] }[];
}

/**
 * Where a run's reports go unless the user names a folder: one new folder per run,
 * `transcripts/findings/<date>-<time>-<model>` (with -2, -3... if that minute already has one),
 * so partial runs and runs on the same day never overwrite each other.
 */
export function suiteOutDir(modelId: string, now = new Date(), root = join('transcripts', 'findings')): string {
  const stamp = now.toISOString().slice(0, 16).replace('T', '-').replace(':', '');
  const first = resolve(root, `${stamp}-${modelId}`);
  let dir = first;
  for (let n = 2; existsSync(dir); n++) dir = `${first}-${n}`;
  return dir;
}

function reproduceMarkdown(r: ExperimentReport, storeFile: string): string[] {
  return [
    '## Reproduce',
    `Experiments: ${r.experimentIds.map((i) => `\`${i}\``).join(', ')}. Runs (first few): ${r.runIds.slice(0, 6).map((i) => `\`${i}\``).join(', ')}.`,
    `Every number above is in the store \`${storeFile}\` (query it with \`query_activations\` or DuckDB); each query is limited to this run's experiments:`, '',
    ...r.reproduce.flatMap((q) => [`${q.what}${q.store && q.store !== storeFile ? ` (in the compared model's store \`${q.store}\`)` : ''}:`, '', sqlBlock(q.sql), '']),
  ];
}

function reportMarkdown(r: ExperimentReport, modelName: string, storeFile: string): string {
  const score = r.score ? ['## Scored against the planted ground truth', table(['claim', 'found', 'planted', 'match'], r.score.map((s) => [s.claim, s.found, s.planted, s.ok ? 'yes' : 'NO'])), ''] : [];
  return [
    `# ${r.title}`, '', `Model: \`${modelName}\` · ${new Date().toISOString().slice(0, 19).replace('T', ' ')} UTC`, '',
    '## Question', r.question, '', '## Method', r.method, '',
    '## Parameters', '```json', JSON.stringify(r.parameters, null, 2), '```', '',
    '## Results', r.body, '',
    '## Conclusion', r.conclusion, '',
    ...score,
    ...reproduceMarkdown(r, storeFile),
  ].join('\n');
}

/** An index row for a report already in the folder from an earlier run (a partial run keeps it listed). */
function earlierRow(dir: string, file: string): string[] {
  const md = readFileSync(join(dir, file), 'utf8');
  const title = md.match(/^# (.+)$/m)?.[1] ?? file;
  const conclusion = md.match(/## Conclusion\n([\s\S]*?)\n(?:## |$)/)?.[1]?.trim() ?? md.match(/\*\*(?:Not run|Failed):\*\* (.+)/)?.[0] ?? '';
  const score = md.split('## Scored against the planted ground truth')[1]?.split('\n## ')[0];
  const lines = score?.split('\n').filter((l) => /^\| .* \| (yes|NO) \|$/.test(l)) ?? [];
  return [String(Number(file.slice(0, 2))), `[${title}](${file})`, `${conclusion} _(earlier run)_`, lines.length ? `${lines.filter((l) => l.endsWith('| yes |')).length}/${lines.length}` : 'n/a'];
}

function writeIndex(outDir: string, modelName: string, promptSource: string, result: SuiteResult, note?: string): void {
  const rows = result.reports.map((r) => [String(r.id), `[${r.title}](${r.file})`, r.conclusion, r.score ? `${r.score.ok}/${r.score.total}` : 'n/a']);
  mkdirSync(outDir, { recursive: true });
  const mine = new Set(result.reports.map((r) => r.file));
  const earlier = readdirSync(outDir).filter((f) => /^\d\d-.+\.md$/.test(f) && !mine.has(f)).map((f) => earlierRow(outDir, f));
  writeFileSync(join(outDir, 'index.md'), [
    `# NeuroScope suite: ${modelName}`, '', `Prompt sets: ${promptSource}`, '', ...(note ? [note, ''] : []),
    table(['#', 'experiment', 'conclusion', 'ground truth'], [...rows, ...earlier].sort((a, b) => Number(a[0]) - Number(b[0]))), '',
  ].join('\n'));
}

export async function runSuite(opts: SuiteOptions): Promise<SuiteResult> {
  const chosen = EXPERIMENTS.filter((e) => !opts.only || opts.only.includes(e.id));
  if (opts.only) {
    const unknown = opts.only.filter((i) => !EXPERIMENTS.some((e) => e.id === i));
    if (unknown.length) throw new ToolError(`unknown experiment ${unknown.join(', ')}; available: ${EXPERIMENTS.map((e) => `${e.id} (${e.slug})`).join(', ')}`);
  }
  const manifestOf = (dir: string | undefined) => {
    const file = dir && join(dir, 'manifest.json');
    return file && existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : null;
  };
  const manifest = manifestOf(opts.modelDir);
  // the compared model's manifest scores what the suite found on it (circuit growth)
  let otherDir: string | undefined;
  const openOther: SuiteEnv['openOther'] = opts.openOther && (async () => {
    const other = await opts.openOther!();
    otherDir = other.modelDir;
    return other;
  });
  const prompts = loadSuitePrompts(opts.modelDir);
  const modelName = modelLabel(opts.modelDir);
  const storeFile = opts.ctx.store.file;
  const result: SuiteResult = { outDir: opts.outDir, reports: [] };
  // The folder appears with the first report, so a run cancelled before one leaves nothing behind.
  const createdDir = !existsSync(opts.outDir);
  const write = (file: string, text: string) => {
    mkdirSync(opts.outDir, { recursive: true });
    writeFileSync(join(opts.outDir, file), text);
  };
  try {
    for (const [i, exp] of chosen.entries()) {
      const env: SuiteEnv = {
        ctx: opts.ctx, prompts, modelName, openOther,
        step: (message) => opts.onStep?.({ experiment: i + 1, of: chosen.length, title: exp.title, message }),
      };
      env.step('starting');
      const file = `${String(exp.id).padStart(2, '0')}-${exp.slug}.md`;
      let report: ExperimentReport;
      try {
        report = await exp.run(env);
      } catch (e) {
        // One experiment that cannot run (no second model, a tool refusing this checkpoint) is reported
        // in its place and the rest go on; cancellation still stops the whole suite.
        if (opts.ctx.signal?.aborted) throw e;
        const why = (e as Error).message;
        const skipped = e instanceof NotRunnable;
        write(file, [`# ${exp.title}`, '', `Model: \`${modelName}\``, '', `**${skipped ? 'Not run' : 'Failed'}:** ${why}`, ''].join('\n'));
        result.reports.push({ id: exp.id, file, title: exp.title, conclusion: `${skipped ? 'not run' : 'FAILED'}: ${why}`, ...(skipped ? { notRun: why } : { failed: why }) });
        continue;
      }
      if (manifest) report.score = scoreReport(exp.slug, report, manifest, manifestOf(otherDir));
      for (const p of report.plots) {
        write(p.file, p.svg);
        // A PNG beside it for viewers without SVG (about 30 ms a plot).
        writeFileSync(join(opts.outDir, p.file.replace(/\.svg$/, '.png')), renderPng(p.svg).png);
        write(p.file.replace(/\.svg$/, '.vl.json'), `${JSON.stringify(p.spec, null, 2)}\n`);
      }
      write(file, reportMarkdown(report, modelName, storeFile));
      const s = report.score;
      result.reports.push({ id: exp.id, file, title: report.title, conclusion: report.conclusion, score: s && { ok: s.filter((x) => x.ok).length, total: s.length }, reproduce: report.reproduce.map((q) => ({ ...q, store: q.store ?? storeFile })) });
    }
  } catch (e) {
    if (result.reports.length) writeIndex(opts.outDir, modelName, prompts.source, result, `**Cancelled** after ${result.reports.length} of ${chosen.length} experiments.`);
    else if (createdDir) rmSync(opts.outDir, { recursive: true, force: true });
    throw e;
  }
  writeIndex(opts.outDir, modelName, prompts.source, result);
  return result;
}
