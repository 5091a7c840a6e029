// The hypothesis loop as a LangGraph graph:
//
//   setup -> hypothesise -> design -> experiment <-> tools
//                ^                        |
//                |                     analyse -> record -> decide -> conclude -> END
//                +-------(refine / alternative)---------------+
//
// Every node returns plain JSON state; a checkpointer saves it after each step, so an interrupted
// investigation resumes at the step it was in (that step runs again). Tools are reached only
// through the MCP toolbox; findings are written with the MCP write_finding tool.
import { Annotation, END, START, StateGraph, type BaseCheckpointSaver } from '@langchain/langgraph';
import { loadPromptFile } from '../chat.ts';
import { completeWithin, fitHistory, fitPrompt, fitText } from '../context.ts';
import { requestChars } from '../llm/context-budget.ts';
import type { ChatMessage, ChatModel, CompletionRequest } from '../llm/types.ts';
import type { McpToolbox } from '../mcp.ts';
import { clipModelText, MAX_FIELD_CHARS, MAX_REPLY_CHARS, replyText } from '../model-text.ts';
import { clip, executeToolCalls } from '../tool-exec.ts';
import { askJson, str, strList } from './json-reply.ts';
import { callIds, hypothesisMarkdown, keyValues, knownIds, measured, NO_MEASUREMENT, reportMarkdown, unverifiedIds } from './report.ts';
import type { Budget, Decision, Hypothesis, InvestigationEvent, InvestigationState, ReportRef, ToolCallLog, Verdict } from './types.ts';

const S = Annotation.Root({
  id: Annotation<string>,
  question: Annotation<string>,
  modelLine: Annotation<string>,
  llm: Annotation<InvestigationState['llm']>,
  budget: Annotation<Budget>,
  spentCalls: Annotation<number>,
  spentMs: Annotation<number>,
  hypotheses: Annotation<Hypothesis[]>,
  messages: Annotation<ChatMessage[]>,
  rounds: Annotation<number>,
  next: Annotation<string>,
  report: Annotation<ReportRef | null>,
  usage: Annotation<InvestigationState['usage']>,
  notes: Annotation<string[]>,
});

type State = typeof S.State;
type Update = Partial<State>;

export interface GraphDeps {
  llm: ChatModel;
  toolbox: McpToolbox;
  /** The chat system prompt (tools, practice); the investigation's instructions are added to it. */
  systemPrompt: string;
  emit: (e: InvestigationEvent) => void;
  signal?: AbortSignal;
  /** Characters of a tool result the model gets. */
  maxResultChars?: number;
}

const VERDICTS: Verdict[] = ['supported', 'refuted', 'inconclusive'];
/** Calls of an experiment whose result is kept at 1,500 characters; older ones keep OLD_RESULT_CHARS. */
const RECENT_CALLS = 60;
const OLD_RESULT_CHARS = 300;

/** A field of a structured reply, clipped (a misbehaving model may send a 200k-character hypothesis). */
const field = (v: unknown, max = MAX_FIELD_CHARS): string => clipModelText(str(v), max);
const DECISIONS: Decision[] = ['refine', 'alternative', 'conclude'];

export function remainingCalls(s: Pick<State, 'budget' | 'spentCalls'>): number {
  return Math.max(0, s.budget.toolCalls - s.spentCalls);
}

function timeLeftMs(s: Pick<State, 'budget' | 'spentMs'>): number {
  return s.budget.timeMs === null ? Infinity : s.budget.timeMs - s.spentMs;
}

function exhausted(s: Pick<State, 'budget' | 'spentCalls' | 'spentMs'>): string | null {
  if (remainingCalls(s) <= 0) return `the tool-call budget (${s.budget.toolCalls}) is spent`;
  if (timeLeftMs(s) <= 0) return `the time budget (${((s.budget.timeMs ?? 0) / 60000).toFixed(1)} minutes) is spent`;
  return null;
}

function history(hs: Hypothesis[]): string {
  if (!hs.length) return 'No hypothesis has been tested yet.';
  return ['So far:', ...hs.map((h) => {
    const a = h.analysis;
    const ids = callIds(h.calls);
    const exps = ids.experimentIds.length ? `\n  Experiments: ${ids.experimentIds.join(', ')} (${ids.runIds.length} runs)` : '';
    return `- H${h.n} (${a?.verdict ?? 'not analysed'}): ${h.statement}${exps}${a ? `\n  Result: ${a.result}${a.effectSizes ? `\n  Effect sizes: ${a.effectSizes}` : ''}` : ''}${h.decision ? `\n  Then: ${h.decision.decision} (${h.decision.reason})${h.decision.next ? ` -> ${h.decision.next}` : ''}` : ''}`;
  })].join('\n');
}

/** The calls of an experiment for the analysis prompt, in at most maxChars: results shorten as the list grows. */
function callsText(calls: ToolCallLog[], maxChars: number): string {
  if (!calls.length) return '(no tool calls)';
  let text = '';
  for (const [argChars, resultChars] of [[600, 2500], [300, 800], [160, 240], [80, 0]]) {
    text = calls.map((c, i) => `${i + 1}. ${c.tool} ${clip(c.args ? JSON.stringify(c.args) : c.rawArguments, argChars)}\n   -> ${!c.ran ? 'not run: ' : c.ok ? '' : 'error: '}${resultChars ? clip(c.result, resultChars).replace(/\n/g, '\n      ') : `${[...c.experimentIds, ...c.runIds].join(' ') || '(see the store)'}`}`).join('\n');
    if (text.length <= maxChars) return text;
  }
  return fitText(text, maxChars);
}

const current = (s: State): Hypothesis => s.hypotheses[s.hypotheses.length - 1];
const withCurrent = (s: State, patch: Partial<Hypothesis>): Hypothesis[] => [...s.hypotheses.slice(0, -1), { ...current(s), ...patch }];

export function buildInvestigationGraph(d: GraphDeps, checkpointer: BaseCheckpointSaver) {
  const sys = (s: State): ChatMessage => ({
    role: 'system',
    content: `${d.systemPrompt}\n\n${loadPromptFile('investigate/system.md', {
      question: s.question,
      budget: `${s.budget.toolCalls} tool calls${s.budget.timeMs ? ` and ${(s.budget.timeMs / 60000).toFixed(1)} minutes` : ''} in all; ${s.budget.maxHypotheses} hypotheses at most`,
    })}`,
  });
  // Streamed tokens are not shown, so a reply that broke off may be asked for again (restartable).
  const llmOpts = (step: string): Omit<CompletionRequest, 'messages'> => ({
    signal: d.signal,
    restartable: true,
    onToken: (delta) => d.emit({ type: 'token', step, delta }),
    onRetry: (e) => d.emit({ type: 'retry', ...e }),
  });
  /** The system message and a step prompt whose one long variable (`long`) is fitted into the room the context budget leaves. */
  const prompt = (s: State, file: string, vars: Record<string, string>, long: string): ChatMessage[] =>
    fitPrompt(d.llm.context, sys(s), (text) => loadPromptFile(file, { ...vars, [long]: text }), vars[long]);
  /** Wraps a node: time spent is added to the budget's clock; usage is saved in the state. */
  const timed = (fn: (s: State) => Promise<Update>) => async (s: State): Promise<Update> => {
    const t0 = Date.now();
    const u = await fn(s);
    return { ...u, spentMs: s.spentMs + (Date.now() - t0), usage: d.llm.usage.snapshot() };
  };
  const note = (s: State, n: string[], message: string) => {
    d.emit({ type: 'note', message });
    return [...n, message];
  };

  /** What every experiment request starts with: the system message and the step's instructions. */
  const experimentPrefix = (s: State): ChatMessage[] => {
    const h = current(s);
    return [sys(s), {
      role: 'user',
      content: loadPromptFile('investigate/experiment.md', {
        n: String(h.n), hypothesis: h.statement, prediction: h.prediction, plan: h.design?.plan ?? '', controls: h.design?.controls ?? '', metric: h.design?.metric ?? '',
        remaining: String(remainingCalls(s)),
      }),
    }];
  };

  const setup = timed(async (s) => {
    d.emit({ type: 'step', step: 'setup', message: `investigating: ${s.question}` });
    return {};
  });

  const hypothesise = timed(async (s) => {
    const n = s.hypotheses.length + 1;
    d.emit({ type: 'step', step: 'hypothesise', hypothesis: n, message: `forming hypothesis ${n}` });
    const prev = s.hypotheses[s.hypotheses.length - 1];
    const direction = prev?.decision ? `Decision after H${prev.n}: ${prev.decision.decision} — ${prev.decision.reason}${prev.decision.next ? `. Next: ${prev.decision.next}` : ''}` : '';
    const r = await askJson(d.llm, prompt(s, 'investigate/hypothesise.md', { n: String(n), history: history(s.hypotheses), direction }, 'history'), {
      ...llmOpts('hypothesise'),
      check: (v) => (str(v.hypothesis) ? null : 'the object has no "hypothesis"'),
    });
    let notes = s.notes;
    for (const w of r.warnings) notes = note(s, notes, `H${n}: ${w}`);
    const v = r.value ?? {};
    const h: Hypothesis = {
      n,
      statement: field(v.hypothesis) || clipModelText(r.raw.trim(), MAX_FIELD_CHARS) || '(no hypothesis given)',
      prediction: field(v.prediction),
      rationale: field(v.rationale),
      origin: prev?.decision && prev.decision.decision !== 'conclude' ? prev.decision.decision : 'initial',
      calls: [],
    };
    d.emit({ type: 'hypothesis', n, statement: h.statement, prediction: h.prediction });
    return { hypotheses: [...s.hypotheses, h], messages: [], rounds: 0, notes };
  });

  const design = timed(async (s) => {
    const h = current(s);
    d.emit({ type: 'step', step: 'design', hypothesis: h.n, message: `designing the experiment for H${h.n}` });
    const r = await askJson(d.llm, [sys(s), { role: 'user', content: loadPromptFile('investigate/design.md', { n: String(h.n), hypothesis: h.statement, prediction: h.prediction, remaining: String(remainingCalls(s)) }) }], {
      ...llmOpts('design'),
      check: (v) => (str(v.plan) ? null : 'the object has no "plan"'),
    });
    let notes = s.notes;
    for (const w of r.warnings) notes = note(s, notes, `H${h.n} design: ${w}`);
    const v = r.value ?? {};
    const designed = { plan: field(v.plan) || clipModelText(r.raw.trim(), MAX_FIELD_CHARS), controls: field(v.controls), metric: field(v.metric) };
    d.emit({ type: 'design', n: h.n, plan: designed.plan });
    return { hypotheses: withCurrent(s, { design: designed }), notes };
  });

  const experiment = timed(async (s) => {
    const h = current(s);
    const stop = exhausted(s) ?? (s.rounds >= s.budget.maxRounds ? `${s.budget.maxRounds} rounds of tool calls for one experiment` : null);
    if (stop) {
      return { next: 'analyse', notes: note(s, s.notes, `H${h.n}: experiment ended: ${stop}`) };
    }
    d.emit({ type: 'step', step: 'experiment', hypothesis: h.n, message: `running the experiment for H${h.n} (${remainingCalls(s)} tool calls left)` });
    let notes = s.notes;
    // The experiment's conversation is kept under the context budget; what was compacted stays so.
    const { completion: c, history: kept } = await completeWithin(d.llm, experimentPrefix(s), s.messages, { ...llmOpts('experiment'), tools: d.toolbox.specs() }, {
      onNote: (n) => (notes = note(s, notes, `H${h.n}: ${n}`)),
    });
    for (const w of c.warnings) notes = note(s, notes, `H${h.n}: ${w}`);
    const reply = replyText(c);
    for (const w of reply.notes) notes = note(s, notes, `H${h.n}: ${w}`);
    const msg: ChatMessage = { role: 'assistant', content: reply.text || null, ...(c.toolCalls.length ? { tool_calls: c.toolCalls } : {}) };
    if (c.toolCalls.length) return { messages: [...kept, msg], rounds: s.rounds + 1, next: 'tools', notes };
    return { messages: [...kept, msg], rounds: s.rounds + 1, next: 'analyse', hypotheses: withCurrent(s, { summary: reply.text }), notes };
  });

  const tools = timed(async (s) => {
    const last = s.messages[s.messages.length - 1];
    const calls = last?.role === 'assistant' ? (last.tool_calls ?? []) : [];
    const exec = await executeToolCalls(calls, d.toolbox, {
      signal: d.signal,
      remaining: remainingCalls(s),
      maxResultChars: d.maxResultChars,
      onToolStart: (e) => d.emit({ type: 'tool-start', ...e }),
      onToolRefused: (e) => d.emit({ type: 'tool-refused', ...e }),
      onToolEnd: (e) => d.emit({ type: 'tool-end', id: e.id, name: e.name, ok: e.ok, ms: e.ms, text: e.text, experimentIds: e.experimentIds, runIds: e.runIds, structured: e.structured }),
      onProgress: (e) => d.emit({ type: 'progress', ...e }),
    });
    if (exec.aborted) throw d.signal?.reason ?? new DOMException('aborted', 'AbortError');
    const logs: ToolCallLog[] = exec.executed.map((x) => ({
      id: x.id, tool: x.name, args: x.args, rawArguments: x.rawArguments, ran: x.ran, ok: x.ok, result: clip(x.text, 1500), ...(x.structured ? { summary: keyValues(x.structured) } : {}), experimentIds: x.experimentIds, runIds: x.runIds, ms: x.ms,
    }));
    // The state is checkpointed after every step, so it is kept bounded too: the conversation is
    // fitted now (not only before the next request), and older calls keep a shorter result.
    const all = [...current(s).calls, ...logs];
    const shortened = all.map((c, i) => (i < all.length - RECENT_CALLS && c.result.length > OLD_RESULT_CHARS ? { ...c, result: clip(c.result, OLD_RESULT_CHARS) } : c));
    const { history } = fitHistory(d.llm.context, experimentPrefix(s), [...s.messages, ...exec.messages], d.toolbox.specs());
    return {
      messages: history,
      spentCalls: s.spentCalls + exec.executed.filter((x) => x.ran).length,
      hypotheses: withCurrent(s, { calls: shortened }),
    };
  });

  const analyse = timed(async (s) => {
    const h = current(s);
    d.emit({ type: 'step', step: 'analyse', hypothesis: h.n, message: `analysing H${h.n}` });
    const vars = { n: String(h.n), hypothesis: h.statement, prediction: h.prediction };
    // The calls are first shortened to about the room (results shrink before anything is cut).
    const room = d.llm.context.inputChars - requestChars([sys(s), { role: 'user', content: loadPromptFile('investigate/analyse.md', { ...vars, calls: '' }) }]);
    const r = await askJson(d.llm, prompt(s, 'investigate/analyse.md', { ...vars, calls: callsText(h.calls, Math.floor(room * 0.85)) }, 'calls'), {
      ...llmOpts('analyse'),
      check: (v) => (str(v.result) ? null : 'the object has no "result"'),
    });
    let notes = s.notes;
    for (const w of r.warnings) notes = note(s, notes, `H${h.n} analysis: ${w}`);
    const v = r.value ?? {};
    const known = knownIds(s.hypotheses);
    let verdict = VERDICTS.includes(str(v.verdict).toLowerCase() as Verdict) ? (str(v.verdict).toLowerCase() as Verdict) : 'inconclusive';
    const cited = strList(v.evidence).map((x) => clip(x, 200));
    let result = field(v.result, MAX_FIELD_CHARS * 2) || clipModelText(r.raw.trim(), MAX_FIELD_CHARS * 2);
    const effectSizes = field(v.effect_sizes ?? v.effectSizes);
    if (!measured(h.calls)) {
      // Nothing was measured: whatever the model says, the verdict cannot rest on data.
      if (verdict !== 'inconclusive') notes = note(s, notes, `H${h.n}: the analysis said "${verdict}" but no measurement was made; the verdict is inconclusive`);
      verdict = 'inconclusive';
      result = `${NO_MEASUREMENT} ${result}`;
    }
    const unverified = [...new Set([...cited.filter((x) => !known.has(x)), ...unverifiedIds(`${result} ${effectSizes}`, known)])];
    if (unverified.length) notes = note(s, notes, `H${h.n}: the analysis cites ids no tool returned: ${unverified.join(', ')}`);
    const analysis = { result, effectSizes, verdict, evidence: cited.filter((x) => known.has(x)), sql: strList(v.sql).map((x) => clipModelText(x, MAX_FIELD_CHARS)), unverified };
    d.emit({ type: 'analysis', n: h.n, verdict, result });
    return { hypotheses: withCurrent(s, { analysis }), notes };
  });

  const writeFinding = async (s: State, name: string, markdown: string, ids: { experimentIds: string[]; runIds: string[] }, title?: string): Promise<{ ref: ReportRef | null; notes: string[] }> => {
    const args = { name, markdown, ...(title ? { title } : {}), experimentIds: ids.experimentIds.slice(0, 200), runIds: ids.runIds.slice(0, 200), overwrite: true };
    let r = await d.toolbox.call('write_finding', args, { signal: d.signal });
    let notes = s.notes;
    if (!r.ok && /the store has no/.test(r.text)) {
      notes = note(s, notes, `write_finding refused some cited ids (${clip(r.text, 200)}); wrote ${name} without them`);
      r = await d.toolbox.call('write_finding', { ...args, experimentIds: [], runIds: [] }, { signal: d.signal });
    }
    if (!r.ok) return { ref: null, notes: note(s, notes, `could not write finding ${name}: ${r.text}`) };
    const w = r.structured;
    const uri = typeof w?.uri === 'string' ? w.uri : undefined;
    const path = typeof w?.path === 'string' ? w.path : undefined;
    d.emit({ type: 'finding', name, uri });
    return { ref: { name, uri, path }, notes };
  };

  const record = timed(async (s) => {
    const h = current(s);
    d.emit({ type: 'step', step: 'record', hypothesis: h.n, message: `recording H${h.n}` });
    const name = `${s.id}-h${h.n}`;
    const { ref, notes } = await writeFinding(s, name, hypothesisMarkdown(h, s), callIds(h.calls), `H${h.n}: ${clip(h.statement.replace(/\s+/g, ' '), 200)}`);
    return { hypotheses: withCurrent(s, { finding: ref ?? undefined }), notes };
  });

  const decide = timed(async (s) => {
    const h = current(s);
    const stop = exhausted(s) ?? (s.hypotheses.length >= s.budget.maxHypotheses ? `${s.budget.maxHypotheses} hypotheses tested, the most this investigation may test` : null);
    let decision: Hypothesis['decision'];
    let notes = s.notes;
    if (stop) {
      decision = { decision: 'conclude', reason: stop, next: '' };
    } else {
      d.emit({ type: 'step', step: 'decide', hypothesis: h.n, message: 'deciding what next' });
      const time = timeLeftMs(s) === Infinity ? '' : ` and ${(timeLeftMs(s) / 60000).toFixed(1)} minutes`;
      const r = await askJson(d.llm, prompt(s, 'investigate/decide.md', { history: history(s.hypotheses), remaining: String(remainingCalls(s)), time, count: String(s.hypotheses.length), max: String(s.budget.maxHypotheses) }, 'history'), {
        ...llmOpts('decide'),
        check: (v) => (DECISIONS.includes(str(v.decision).toLowerCase() as Decision) ? null : `"decision" must be one of ${DECISIONS.join(', ')}`),
      });
      for (const w of r.warnings) notes = note(s, notes, `decision after H${h.n}: ${w}`);
      const v = r.value ?? {};
      const choice = DECISIONS.includes(str(v.decision).toLowerCase() as Decision) ? (str(v.decision).toLowerCase() as Decision) : 'conclude';
      decision = { decision: choice, reason: field(v.reason) || (r.value ? '' : 'no usable decision; concluding'), next: field(v.next) };
    }
    d.emit({ type: 'decision', decision: decision.decision, reason: decision.reason });
    return { hypotheses: withCurrent(s, { decision }), next: decision.decision === 'conclude' ? 'conclude' : 'hypothesise', notes };
  });

  const conclude = timed(async (s) => {
    d.emit({ type: 'step', step: 'conclude', message: 'writing the conclusion and the report' });
    const c = await d.llm.complete({ ...llmOpts('conclude'), messages: prompt(s, 'investigate/conclude.md', { question: s.question, history: history(s.hypotheses) }, 'history') });
    let notes = s.notes;
    for (const w of c.warnings) notes = note(s, notes, `conclusion: ${w}`);
    const reply = replyText(c, MAX_REPLY_CHARS);
    for (const w of reply.notes) notes = note(s, notes, `conclusion: ${w}`);
    const unverified = unverifiedIds(reply.text, knownIds(s.hypotheses));
    if (unverified.length) notes = note(s, notes, `the conclusion cites ids no tool returned: ${unverified.join(', ')}`);
    const final: State = { ...s, notes, usage: d.llm.usage.snapshot() };
    const md = reportMarkdown(final, reply.text, unverified);
    const w = await writeFinding(final, `${s.id}-report`, md, callIds(s.hypotheses.flatMap((h) => h.calls)), `Investigation: ${clip(s.question.replace(/\s+/g, ' '), 200)}`);
    return { report: w.ref, notes: w.notes, next: 'end' };
  });

  return new StateGraph(S)
    .addNode('setup', setup)
    .addNode('hypothesise', hypothesise)
    .addNode('design', design)
    .addNode('experiment', experiment)
    .addNode('tools', tools)
    .addNode('analyse', analyse)
    .addNode('record', record)
    .addNode('decide', decide)
    .addNode('conclude', conclude)
    .addEdge(START, 'setup')
    .addEdge('setup', 'hypothesise')
    .addEdge('hypothesise', 'design')
    .addEdge('design', 'experiment')
    .addConditionalEdges('experiment', (s: State) => s.next, { tools: 'tools', analyse: 'analyse' })
    .addEdge('tools', 'experiment')
    .addEdge('analyse', 'record')
    .addEdge('record', 'decide')
    .addConditionalEdges('decide', (s: State) => s.next, { hypothesise: 'hypothesise', conclude: 'conclude' })
    .addEdge('conclude', END)
    .compile({ checkpointer });
}

export type InvestigationGraph = ReturnType<typeof buildInvestigationGraph>;
