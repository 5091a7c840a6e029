// The Markdown an investigation writes: one finding per hypothesis (hypothesis, design, every tool
// call with its experiment and run ids, SQL, result, verdict) and a final report that links them.
import { formatUsage } from '../llm/usage.ts';
import { EXPERIMENT_ID, RUN_ID } from '../mcp-result.ts';
import type { Hypothesis, InvestigationState, ToolCallLog } from './types.ts';

const esc = (s: string) => s.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
const clip = (s: string, n: number) => (s.length > n ? `${s.slice(0, n)}…` : s);

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
  const rows = calls.map((c, i) => {
    const status = !c.ran ? 'not run' : c.ok ? 'ok' : 'error';
    const ids = [...c.experimentIds.map((x) => `\`${x}\``), ...(c.runIds.length ? [`${c.runIds.length} run(s): ${c.runIds.slice(0, 3).map((x) => `\`${x}\``).join(', ')}${c.runIds.length > 3 ? ', …' : ''}`] : [])].join('<br>') || '–';
    return `| ${i + 1} | \`${c.tool}\` | ${status} | ${ids} | ${esc(clip(c.ok ? (c.summary ?? c.result) : c.result, 200))} |`;
  });
  return ['| # | tool | status | experiment / runs | result |', '|---|---|---|---|---|', ...rows].join('\n');
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
  return [
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
    ...h.calls.map((c, i) => `${i + 1}. \`${c.tool}\` \`${esc(clip(c.args ? JSON.stringify(c.args) : c.rawArguments, 1500))}\``), '',
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
    ...sqlFor(h).map((q) => `\`\`\`sql\n${q}\n\`\`\``),
    '',
  ].join('\n');
}

export function reportMarkdown(s: InvestigationState, conclusion: string, unverified: string[]): string {
  const hs = s.hypotheses;
  const all = callIds(hs.flatMap((h) => h.calls));
  const path = hs.map((h) => `H${h.n} (${h.analysis?.verdict ?? 'not analysed'})${h.decision ? ` -> ${h.decision.decision}: ${h.decision.reason}` : ''}`);
  const budget = `${s.spentCalls} of ${s.budget.toolCalls} tool calls${s.budget.timeMs ? `, ${(s.spentMs / 60000).toFixed(1)} of ${(s.budget.timeMs / 60000).toFixed(1)} minutes` : `, ${(s.spentMs / 60000).toFixed(1)} minutes`}`;
  return [
    `# Investigation: ${clip(s.question.replace(/\s+/g, ' '), 200)}`,
    '',
    `- Investigation: \`${s.id}\``,
    `- Model under study: ${s.modelLine}`,
    `- Agent: \`${s.llm.model}\` at ${s.llm.endpoint} (${s.llm.backend} backend)${s.usage ? ` · ${formatUsage(s.usage)}` : ''}`,
    `- Budget used: ${budget}`,
    '',
    '## Conclusion',
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
    ...(s.notes.length ? ['## Notes', ...s.notes.map((n) => `- ${n}`), ''] : []),
    '## Reproduce',
    'Each hypothesis finding lists its tool calls with their arguments and the SQL for its numbers. All of this investigation\'s experiments:', '',
    '```sql',
    `SELECT experiment_id, kind, metric, clean_value, corrupted_value, created_at FROM experiments WHERE experiment_id IN (${all.experimentIds.map((x) => `'${x}'`).join(', ') || "''"}) ORDER BY created_at;`,
    '```',
    '',
  ].join('\n');
}
