// Running a built-in protocol end to end: model and prompt sets from the server, the protocol's
// experiments through MCP, and one Markdown finding written with write_finding (so it is also
// recorded in the store with the experiment and run ids it cites).
import { writeFindingTool } from '../../tools/findings.ts';
import { modelInfoOutput } from '../../tools/model-tools.ts';
import { loadSuitePrompts } from '../../tools/suite/prompts.ts';
import { modelSummary } from '../chat.ts';
import type { McpToolbox } from '../mcp.ts';
import type { ToolHandlers } from '../tool-exec.ts';
import { inductionProtocol, ioiProtocol } from './circuits.ts';
import { BudgetSpent, mdTable, Recorder, type Phenomenon, type ProtocolEnv, type ProtocolReport } from './common.ts';
import { entanglementProtocol, sentimentProtocol, successorProtocol, type Arch } from './features.ts';

export interface ProtocolRunOptions {
  toolbox: McpToolbox;
  phenomenon: Phenomenon;
  question: string;
  investigationId: string;
  /** Tool calls the protocol may make (write_finding not counted). */
  budget?: number;
  deadline?: number;
  signal?: AbortSignal;
  step?: (message: string) => void;
  handlers?: ToolHandlers;
  /** Why no LLM took part (shown in the finding). */
  noLlmReason?: string;
}

export interface ProtocolRun {
  report: ProtocolReport;
  markdown: string;
  finding: { name: string; uri?: string; path?: string; findingId?: string };
  toolCalls: number;
}

export const NO_LLM_REASON = 'no LLM is configured (neither OPENAI_API_KEY nor OPENAI_BASE_URL is set)';

async function architecture(toolbox: McpToolbox): Promise<Arch> {
  const a = modelInfoOutput.parse((await toolbox.callParsed('model_info', {})).data).architecture;
  return { layers: a.layers, heads: a.heads, experts: a.experts };
}

export async function runProtocol(o: ProtocolRunOptions): Promise<ProtocolRun> {
  const step = o.step ?? (() => undefined);
  const summary = await modelSummary(o.toolbox);
  if (!summary.dir) throw new Error(`the built-in protocols need the model directory from model_info: ${summary.line}`);
  const prompts = loadSuitePrompts(summary.dir);
  const arch = await architecture(o.toolbox);
  const env: ProtocolEnv = {
    toolbox: o.toolbox, prompts, modelLine: summary.line, signal: o.signal, budget: o.budget ?? Infinity, deadline: o.deadline ?? Infinity, step, handlers: o.handlers,
  };
  const rec = new Recorder(env);
  let report: ProtocolReport;
  try {
    switch (o.phenomenon) {
      case 'ioi': report = await ioiProtocol(env, rec); break;
      case 'induction': report = await inductionProtocol(env, rec); break;
      case 'successor': report = await successorProtocol(env, rec, arch); break;
      case 'sentiment': report = await sentimentProtocol(env, rec, arch); break;
      case 'entanglement': report = await entanglementProtocol(env, rec); break;
    }
  } catch (e) {
    if (!(e instanceof BudgetSpent)) throw e;
    report = {
      phenomenon: o.phenomenon, title: `${o.phenomenon}: protocol stopped early`, question: o.question, hypothesis: '(the protocol stopped before its hypothesis was tested)',
      method: 'The built-in protocol, cut short.', body: 'The experiments that ran are listed above; their results are in the store.',
      conclusion: `No conclusion: ${e.message} after ${rec.calls} tool calls, before the protocol finished. Run again with a larger --budget or --time.`,
      caveats: [], found: {}, experiments: rec.experiments, sql: rec.sql, stoppedEarly: e.message,
    };
  }
  const markdown = protocolFindingMarkdown(report, { question: o.question, investigationId: o.investigationId, modelLine: summary.line, promptSource: prompts.source, toolCalls: rec.calls, budget: o.budget, noLlmReason: o.noLlmReason ?? NO_LLM_REASON });
  step('writing the finding');
  const name = `${o.investigationId}-${o.phenomenon}`;
  const experimentIds = [...new Set(report.experiments.map((x) => x.experimentId).filter((x): x is string => !!x))];
  const runIds = [...new Set(report.experiments.flatMap((x) => x.runIds))].slice(0, 200);
  const w = await o.toolbox.callParsed('write_finding', { name, title: report.title, markdown, experimentIds, runIds, overwrite: true });
  const d = writeFindingTool.output.parse(w.data);
  return { report, markdown, finding: { name, uri: d.uri, path: d.path, findingId: d.findingId }, toolCalls: rec.calls };
}

const short = (args: Record<string, unknown>): string => {
  const s = JSON.stringify(args, (_k, v) => (Array.isArray(v) && v.length > 3 && v.every((x) => typeof x === 'string') ? [...v.slice(0, 2), `… ${v.length - 2} more`] : v));
  return s.length > 400 ? `${s.slice(0, 400)}…` : s;
};

export function protocolFindingMarkdown(r: ProtocolReport, m: { question: string; investigationId: string; modelLine: string; promptSource: string; toolCalls: number; budget?: number; noLlmReason: string }): string {
  const exps = r.experiments;
  return [
    `# ${r.title}`,
    '',
    `> **No LLM took part in this investigation.** ${m.noLlmReason[0].toUpperCase()}${m.noLlmReason.slice(1)}, so NeuroScope ran its built-in protocol for ${r.phenomenon}: a fixed sequence of standard experiments, chosen by keywords in the question and called through the same MCP tools an LLM agent would use. The hypothesis, the experiments and the wording of the conclusion are the protocol's; every number comes from the tool results cited below.`,
    '',
    `- Investigation: \`${m.investigationId}\``,
    `- Question: ${JSON.stringify(m.question)}`,
    `- Model: ${m.modelLine}`,
    `- Prompt sets: ${m.promptSource}`,
    `- Tool calls: ${m.toolCalls}${m.budget !== undefined && Number.isFinite(m.budget) ? ` (budget ${m.budget})` : ''} · ${new Date().toISOString().slice(0, 19).replace('T', ' ')} UTC`,
    ...(r.stoppedEarly ? [`- **Stopped early**: ${r.stoppedEarly}`] : []),
    '',
    '## Question', r.question, '',
    '## Hypothesis', r.hypothesis, '',
    '## Method', r.method, '',
    '## Experiments',
    mdTable(['#', 'step', 'tool', 'experiment', 'runs', 'result'], exps.map((e, i) => [i + 1, e.step, `\`${e.tool}\``, e.experimentId ? `\`${e.experimentId}\`` : '–', e.runIds.length ? `${e.runIds.length} (\`${e.runIds[0]}\`…)` : '–', e.summary || '–'])),
    '',
    '## Results', r.body, '',
    '## Conclusion', r.conclusion, '',
    ...(r.caveats.length ? ['## Caveats', ...r.caveats.map((c) => `- ${c}`), ''] : []),
    '## Reproduce',
    'Every number above is in the activation store; these read-only queries (`query_activations`) return them:', '',
    ...r.sql.map((q) => `\`\`\`sql\n${q}\n\`\`\``),
    ...(r.sql.length === 0 ? ['(no queries)'] : []),
    '',
    '<details><summary>Tool calls and arguments</summary>', '',
    ...exps.map((e, i) => `${i + 1}. \`${e.tool}\` ${short(e.args).replace(/\|/g, '\\|')}`), '',
    '</details>', '',
  ].join('\n');
}

