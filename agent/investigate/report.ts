// The Markdown an investigation writes: one finding per hypothesis (hypothesis, design, every tool
// call with its experiment and run ids, SQL, result, verdict) and a final report that links them.
import { formatUsage } from '../llm/usage.ts';
import { EXPERIMENT_ID, RUN_ID } from '../mcp-result.ts';
import type { Hypothesis, InvestigationState, ToolCallLog } from './types.ts';

const esc = (s: string) => s.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
const clip = (s: string, n: number) => (s.length > n ? `${s.slice(0, n)}…` : s);

/** write_finding takes strings of up to 100,000 characters (maxStringChars in tools/limits.ts). */
export const MAX_FINDING_CHARS = 90_000;
/** Calls listed one per row in a finding; beyond this only those with ids or errors, and the first and last ones. */
const MAX_CALL_ROWS = 200;

export const NO_MEASUREMENT = 'No measurement was made: no tool call for this hypothesis ran successfully, so this verdict rests on no data.';

/** Whether any tool call ran and succeeded. */
export const measured = (calls: ToolCallLog[]): boolean => calls.some((c) => c.ran && c.ok);

/** A finding cut to what write_finding takes, with a note. */
export function boundFinding(md: string): string {
  return md.length <= MAX_FINDING_CHARS ? md : `${md.slice(0, MAX_FINDING_CHARS)}\n\n… (this finding was ${md.length.toLocaleString('en-US')} characters; cut to ${MAX_FINDING_CHARS.toLocaleString('en-US')} to fit write_finding's limit. Every call's experiment and run ids are in the store.)\n`;
}

/** The calls shown one per row: all when few, else those with ids or errors and the first and last 50. */
function shownCalls(calls: ToolCallLog[]): { shown: [number, ToolCallLog][]; hidden: ToolCallLog[] } {
  const all = calls.map((c, i) => [i, c] as [number, ToolCallLog]);
  if (calls.length <= MAX_CALL_ROWS) return { shown: all, hidden: [] };
  const keep = (i: number, c: ToolCallLog) => i < 50 || i >= calls.length - 50 || !c.ok || c.experimentIds.length > 0 || c.runIds.length > 0;
  const shown = all.filter(([i, c]) => keep(i, c)).slice(0, MAX_CALL_ROWS * 2);
  const ids = new Set(shown.map(([i]) => i));
  return { shown, hidden: all.filter(([i]) => !ids.has(i)).map(([, c]) => c) };
}

function hiddenRow(hidden: ToolCallLog[]): string[] {
  if (!hidden.length) return [];
  const counts = new Map<string, number>();
  for (const c of hidden) counts.set(c.tool, (counts.get(c.tool) ?? 0) + 1);
  return [`| … | ${[...counts].map(([t, k]) => `\`${t}\` ×${k}`).join(', ')} | ok | – | ${hidden.length} more calls that returned no experiment or run ids |`];
}

export function resultsSql(experimentId: string): string {
  return `SELECT site, layer, position, component, value, effect FROM results WHERE experiment_id = '${experimentId}' ORDER BY abs(effect) DESC LIMIT 20;`;
}

/** Every id a tool returned in the investigation. */
export function knownIds(hs: Hypothesis[]): Set<string> {
  const s = new Set<string>();
  for (const h of hs) for (const c of h.calls) if (c.ok) for (const id of [...c.experimentIds, ...c.runIds]) s.add(id);
  return s;
}

/** Ids mentioned in a text that no tool returned. */
export function unverifiedIds(text: string, known: Set<string>): string[] {
  return [...new Set([...(text.match(EXPERIMENT_ID) ?? []), ...(text.match(RUN_ID) ?? [])])].filter((id) => !known.has(id));
}

export function callIds(calls: ToolCallLog[]): { experimentIds: string[]; runIds: string[] } {
  const ok = calls.filter((c) => c.ok);
  return { experimentIds: [...new Set(ok.flatMap((c) => c.experimentIds))], runIds: [...new Set(ok.flatMap((c) => c.runIds))] };
}

function callsTable(calls: ToolCallLog[]): string {
  if (!calls.length) return 'No tool calls were made for this hypothesis.';
  const { shown, hidden } = shownCalls(calls);
  const rows = shown.map(([i, c]) => {
    const status = !c.ran ? 'not run' : c.ok ? 'ok' : 'error';
    const ids = [...c.experimentIds.map((x) => `\`${x}\``), ...(c.runIds.length ? [`${c.runIds.length} run(s): ${c.runIds.slice(0, 3).map((x) => `\`${x}\``).join(', ')}${c.runIds.length > 3 ? ', …' : ''}`] : [])].join('<br>') || '–';
    return `| ${i + 1} | \`${c.tool}\` | ${status} | ${ids} | ${esc(clip(c.ok ? (c.summary ?? c.result) : c.result, 200))} |`;
  });
  return ['| # | tool | status | experiment / runs | result |', '|---|---|---|---|---|', ...rows, ...hiddenRow(hidden)].join('\n');
}

/** A structured result's scalar fields in one line ("clean 1.71, corrupted 0.903, ..."). */
export function keyValues(result: Record<string, unknown>): string {
  return Object.entries(result)
    .filter(([k, v]) => !/Id$|Ids$|^hook$/.test(k) && (typeof v === 'number' || typeof v === 'boolean' || (typeof v === 'string' && v.length <= 60 && !v.includes('\n'))))
    .slice(0, 8).map(([k, v]) => `${k} ${typeof v === 'number' ? Number(v.toPrecision(4)) : v}`).join(', ');
}

function sqlFor(h: Hypothesis): string[] {
  const fromTools = h.calls.filter((c) => c.ok && c.tool === 'query_activations' && typeof c.args?.sql === 'string').map((c) => String(c.args!.sql));
  const generated = callIds(h.calls).experimentIds.map(resultsSql);
  return [...new Set([...(h.analysis?.sql ?? []), ...fromTools, ...generated])];
}

export function hypothesisMarkdown(h: Hypothesis, s: Pick<InvestigationState, 'id' | 'question' | 'modelLine' | 'llm'>): string {
  const a = h.analysis;
  const origin = h.origin === 'initial' ? 'first hypothesis' : h.origin === 'refine' ? `refines H${h.n - 1}` : `alternative to H${h.n - 1}`;
  return boundFinding([
    `# H${h.n}: ${clip(h.statement.replace(/\s+/g, ' '), 200)}`,
    '',
    `- Investigation: \`${s.id}\` · question: ${JSON.stringify(s.question)}`,
    `- Model under study: ${s.modelLine}`,
    `- Agent: \`${s.llm.model}\` at ${s.llm.endpoint} (${s.llm.backend} backend) · ${origin}`,
    '',
    '## Hypothesis', h.statement, '',
    `**Prediction.** ${h.prediction || '(none given)'}`, '',
    ...(h.rationale ? [`**Rationale.** ${h.rationale}`, ''] : []),
    '## Experiment design',
    ...(h.design ? [`**Plan.** ${h.design.plan}`, '', `**Controls.** ${h.design.controls || '(none given)'}`, '', `**Metric.** ${h.design.metric || '(none given)'}`] : ['(no design recorded)']),
    '',
    '## Experiments',
    callsTable(h.calls),
    '',
    '<details><summary>Arguments of each call</summary>', '',
    ...shownCalls(h.calls).shown.map(([i, c]) => `${i + 1}. \`${c.tool}\` \`${esc(clip(c.args ? JSON.stringify(c.args) : c.rawArguments, 1500))}\``), '',
    '</details>', '',
    ...(h.summary ? ['**The agent\'s summary of the experiment.**', '', h.summary, ''] : []),
    '## Result',
    a ? a.result : '(not analysed)', '',
    ...(a?.effectSizes ? [`**Effect sizes.** ${a.effectSizes}`, ''] : []),
    `## Verdict: ${a?.verdict ?? 'inconclusive'}`,
    a?.evidence.length ? `Evidence: ${a.evidence.map((x) => `\`${x}\``).join(', ')}.` : 'No evidence ids cited.',
    ...(a?.unverified.length ? ['', `**Unverified references**: ${a.unverified.map((x) => `\`${x}\``).join(', ')} ${a.unverified.length === 1 ? 'was' : 'were'} cited but no tool returned ${a.unverified.length === 1 ? 'it' : 'them'} in this investigation; not counted as evidence.`] : []),
    '',
    '## Reproduce',
    'Read-only queries over the activation store (`query_activations`):', '',
    ...sqlFor(h).slice(0, 50).map((q) => `\`\`\`sql\n${q}\n\`\`\``),
    '',
  ].join('\n'));
}

export function reportMarkdown(s: InvestigationState, conclusion: string, unverified: string[]): string {
  const hs = s.hypotheses;
  const all = callIds(hs.flatMap((h) => h.calls));
  const path = hs.map((h) => `H${h.n} (${h.analysis?.verdict ?? 'not analysed'})${h.decision ? ` -> ${h.decision.decision}: ${h.decision.reason}` : ''}`);
  const budget = `${s.spentCalls} of ${s.budget.toolCalls} tool calls${s.budget.timeMs ? `, ${(s.spentMs / 60000).toFixed(1)} of ${(s.budget.timeMs / 60000).toFixed(1)} minutes` : `, ${(s.spentMs / 60000).toFixed(1)} minutes`}`;
  const none = !hs.some((h) => measured(h.calls));
  const notes = s.notes.length > 100 ? [`(${s.notes.length - 100} earlier notes left out)`, ...s.notes.slice(-100)] : s.notes;
  return boundFinding([
    `# Investigation: ${clip(s.question.replace(/\s+/g, ' '), 200)}`,
    '',
    `- Investigation: \`${s.id}\``,
    `- Model under study: ${s.modelLine}`,
    `- Agent: \`${s.llm.model}\` at ${s.llm.endpoint} (${s.llm.backend} backend)${s.usage ? ` · ${formatUsage(s.usage)}` : ''}`,
    `- Budget used: ${budget}`,
    '',
    '## Conclusion',
    ...(none ? ['> **No measurement was made** in this investigation: no tool call ran successfully, so the conclusion below rests on no data.', ''] : []),
    conclusion.trim() || '(the agent gave no conclusion)',
    '',
    ...(unverified.length ? [`> **Unverified references**: the conclusion cites ${unverified.map((x) => `\`${x}\``).join(', ')}, which no tool returned in this investigation.`, ''] : []),
    '## Hypotheses',
    '| # | hypothesis | verdict | finding | experiments |',
    '|---|---|---|---|---|',
    ...hs.map((h) => `| H${h.n} | ${esc(clip(h.statement, 160))} | ${h.analysis?.verdict ?? '–'} | ${h.finding ? `[${h.finding.name}](${h.finding.name}.md) (\`${h.finding.uri ?? h.finding.name}\`)` : '–'} | ${callIds(h.calls).experimentIds.map((x) => `\`${x}\``).join(' ') || '–'} |`),
    '',
    '## Path',
    ...path.map((p) => `1. ${p}`),
    '',
    '## Experiments and runs',
    `${all.experimentIds.length} experiments: ${all.experimentIds.map((x) => `\`${x}\``).join(', ') || 'none'}.`,
    '',
    `${all.runIds.length} runs${all.runIds.length ? `: ${all.runIds.slice(0, 40).map((x) => `\`${x}\``).join(', ')}${all.runIds.length > 40 ? ', …' : ''}` : ''}.`,
    '',
    ...(notes.length ? ['## Notes', ...notes.map((n) => `- ${clip(n, 1000)}`), ''] : []),
    '## Reproduce',
    'Each hypothesis finding lists its tool calls with their arguments and the SQL for its numbers. All of this investigation\'s experiments:', '',
    '```sql',
    `SELECT experiment_id, kind, metric, clean_value, corrupted_value, created_at FROM experiments WHERE experiment_id IN (${all.experimentIds.map((x) => `'${x}'`).join(', ') || "''"}) ORDER BY created_at;`,
    '```',
    '',
  ].join('\n'));
}
