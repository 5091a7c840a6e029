// The standard experiments as one command: each writes a Markdown report with SVG plots, ids and
// SQL; an index links them. On gpt-oss-tiny each report is scored against the manifest.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ToolError, type ToolContext } from '../define.ts';
import { causalTracing } from './experiments/causal-tracing.ts';
import { circuitGrowth } from './experiments/circuit-growth.ts';
import { entanglement } from './experiments/entanglement.ts';
import { featureLocalisation } from './experiments/feature-localisation.ts';
import { steering } from './experiments/steering.ts';
import { sqlBlock, table } from './markdown.ts';
import { loadSuitePrompts } from './prompts.ts';
import { NotRunnable } from './compare.ts';
import { modelLabel } from '../workspace.ts';
import { scoreReport } from './score.ts';
import type { Experiment, ExperimentReport, SuiteEnv } from './types.ts';

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
  reports: { id: number; file: string; title: string; conclusion: string; score?: { ok: number; total: number }; notRun?: string; failed?: string }[];
}

function reportMarkdown(r: ExperimentReport, modelName: string): string {
  const score = r.score ? ['## Scored against the planted ground truth', table(['claim', 'found', 'planted', 'match'], r.score.map((s) => [s.claim, s.found, s.planted, s.ok ? 'yes' : 'NO'])), ''] : [];
  return [
    `# ${r.title}`, '', `Model: \`${modelName}\` · ${new Date().toISOString().slice(0, 19).replace('T', ' ')} UTC`, '',
    '## Question', r.question, '', '## Method', r.method, '',
    '## Parameters', '```json', JSON.stringify(r.parameters, null, 2), '```', '',
    '## Results', r.body, '',
    '## Conclusion', r.conclusion, '',
    ...score,
    '## Reproduce', `Experiments: ${r.experimentIds.map((i) => `\`${i}\``).join(', ')}. Runs (first few): ${r.runIds.slice(0, 6).map((i) => `\`${i}\``).join(', ')}.`,
    'Every number above is in the store (`.neuroscope/neuroscope.duckdb`; query it with `query_activations` or DuckDB):', '',
    ...r.sql.map(sqlBlock), '',
  ].join('\n');
}

export async function runSuite(opts: SuiteOptions): Promise<SuiteResult> {
  const chosen = EXPERIMENTS.filter((e) => !opts.only || opts.only.includes(e.id));
  if (opts.only) {
    const unknown = opts.only.filter((i) => !EXPERIMENTS.some((e) => e.id === i));
    if (unknown.length) throw new ToolError(`unknown experiment ${unknown.join(', ')}; available: ${EXPERIMENTS.map((e) => `${e.id} (${e.slug})`).join(', ')}`);
  }
  mkdirSync(opts.outDir, { recursive: true });
  const manifestFile = join(opts.modelDir, 'manifest.json');
  const manifest = existsSync(manifestFile) ? JSON.parse(readFileSync(manifestFile, 'utf8')) : null;
  const prompts = loadSuitePrompts(opts.modelDir);
  const modelName = modelLabel(opts.modelDir);
  const result: SuiteResult = { outDir: opts.outDir, reports: [] };
  for (const [i, exp] of chosen.entries()) {
    const env: SuiteEnv = {
      ctx: opts.ctx, prompts, modelName, openOther: opts.openOther,
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
      writeFileSync(join(opts.outDir, file), [`# ${exp.title}`, '', `Model: \`${modelName}\``, '', `**${skipped ? 'Not run' : 'Failed'}:** ${why}`, ''].join('\n'));
      result.reports.push({ id: exp.id, file, title: exp.title, conclusion: `${skipped ? 'not run' : 'FAILED'}: ${why}`, ...(skipped ? { notRun: why } : { failed: why }) });
      continue;
    }
    if (manifest) report.score = scoreReport(exp.slug, report, manifest);
    for (const p of report.plots) writeFileSync(join(opts.outDir, p.file), p.svg);
    writeFileSync(join(opts.outDir, file), reportMarkdown(report, modelName));
    const s = report.score;
    result.reports.push({ id: exp.id, file, title: report.title, conclusion: report.conclusion, score: s && { ok: s.filter((x) => x.ok).length, total: s.length } });
  }
  writeFileSync(join(opts.outDir, 'index.md'), [
    `# NeuroScope suite: ${modelName}`, '', `Prompt sets: ${prompts.source}`, '',
    table(['#', 'experiment', 'conclusion', 'ground truth'], result.reports.map((r) => [String(r.id), `[${r.title}](${r.file})`, r.conclusion, r.score ? `${r.score.ok}/${r.score.total}` : 'n/a'])), '',
  ].join('\n'));
  return result;
}
