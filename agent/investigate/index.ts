// `neuroscope investigate "<question>"`: the automated hypothesis loop when an LLM is configured,
// the built-in protocol for the question's phenomenon when not. State lives in
// <dataDir>/investigations/<id>/: investigation.json (what it is, how it ended) and, for the LLM
// loop, checkpoints.json (LangGraph checkpoints), so `--resume <id>` carries on where it stopped.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadPromptFile, modelSummary } from '../chat.ts';
import { isAbortError, type ChatModel } from '../llm/types.ts';
import type { UsageSnapshot } from '../llm/usage.ts';
import type { McpToolbox } from '../mcp.ts';
import { matchPhenomenon, PHENOMENA, PHENOMENON_NAMES, runProtocol, type Phenomenon } from '../protocols/index.ts';
import { FileCheckpointSaver } from './checkpoint.ts';
import { buildInvestigationGraph } from './graph.ts';
import { measured } from './report.ts';
import type { Budget, InvestigationEvent, InvestigationState } from './types.ts';

export type { InvestigationEvent, InvestigationState, Hypothesis } from './types.ts';
export { FileCheckpointSaver } from './checkpoint.ts';

export interface InvestigateOptions {
  /** The question (a new investigation), or `resume` with an id. */
  question?: string;
  resume?: string;
  toolbox: McpToolbox;
  /** Where investigations keep their state (the data dir). */
  dataDir: string;
  /** The agent's LLM; null or absent: the built-in protocol runs instead. */
  llm?: ChatModel | null;
  /** Tool calls (default 40). On resume, a new value replaces the saved one. */
  budget?: number;
  /** Minutes (default: no limit). */
  timeMinutes?: number;
  maxHypotheses?: number;
  signal?: AbortSignal;
  onEvent?: (e: InvestigationEvent) => void;
  /** A fixed id for a new investigation (default: inv-<date>-<random>). */
  id?: string;
  /** LLM requests per experiment before it must be analysed (default 12). */
  maxRounds?: number;
  /** The command that resumes an investigation, for messages (default: `neuroscope investigate --resume <id>`). */
  resumeCommand?: (id: string) => string;
}

/** An investigation stopped on an error; its state is saved and `resume` carries on from the step that failed. */
export class InvestigationFailedError extends Error {
  override readonly name = 'InvestigationFailedError';
  constructor(readonly id: string, readonly resume: string, override readonly cause: unknown) {
    super(`investigation ${id} stopped: ${(cause as Error)?.message ?? String(cause)}\nIts state is saved; carry on with: ${resume}`);
  }
}

export interface InvestigationResult {
  id: string;
  mode: 'llm' | 'protocol';
  status: 'concluded' | 'interrupted';
  question: string;
  /** The final report (LLM loop) or the protocol's finding. */
  report: { name: string; uri?: string; path?: string } | null;
  /** Every finding written (hypotheses, then the report). */
  findings: string[];
  toolCalls: number;
  usage: UsageSnapshot | null;
  phenomenon?: Phenomenon;
  /** A sentence for people: how it ended and what to do next. */
  message: string;
}

export interface InvestigationMeta {
  id: string;
  question: string;
  mode: 'llm' | 'protocol';
  phenomenon?: Phenomenon;
  llm?: { model: string; endpoint: string; backend: string };
  created: string;
  updated: string;
  status: 'running' | 'interrupted' | 'concluded' | 'failed';
  report?: string | null;
  error?: string;
}

export const DEFAULT_BUDGET = 40;
const ID_RE = /^inv-[A-Za-z0-9-]{1,80}$/;

export function newInvestigationId(now = new Date()): string {
  return `inv-${now.toISOString().slice(0, 10).replace(/-/g, '')}-${randomBytes(4).toString('hex').slice(0, 6)}`;
}

export function investigationDir(dataDir: string, id: string): string {
  if (!ID_RE.test(id)) throw new Error(`"${id}" is not an investigation id (they look like inv-20250101-ab12cd)`);
  return join(dataDir, 'investigations', id);
}

function readMeta(dir: string): InvestigationMeta {
  const f = join(dir, 'investigation.json');
  if (!existsSync(f)) throw new Error(`there is no investigation at ${dir}; list them with \`ls ${join(dir, '..')}\``);
  return JSON.parse(readFileSync(f, 'utf8'));
}

function writeMeta(dir: string, m: InvestigationMeta): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'investigation.json'), `${JSON.stringify({ ...m, updated: new Date().toISOString() }, null, 2)}\n`);
}

export function listInvestigations(dataDir: string): InvestigationMeta[] {
  const root = join(dataDir, 'investigations');
  if (!existsSync(root)) return [];
  return readdirSync(root).filter((n) => ID_RE.test(n) && existsSync(join(root, n, 'investigation.json'))).map((n) => readMeta(join(root, n)))
    .sort((a, b) => b.created.localeCompare(a.created));
}

export const defaultResumeCommand = (id: string): string => `neuroscope investigate --resume ${id}`;

export async function investigate(o: InvestigateOptions): Promise<InvestigationResult> {
  const emit = o.onEvent ?? (() => undefined);
  const resumeCommand = o.resumeCommand ?? defaultResumeCommand;
  let id: string;
  let meta: InvestigationMeta;
  if (o.resume) {
    id = o.resume;
    meta = readMeta(investigationDir(o.dataDir, id));
    if (o.question && o.question !== meta.question) throw new Error(`investigation ${id} is about ${JSON.stringify(meta.question)}; give no question with --resume`);
    if (meta.status === 'concluded') throw new Error(`investigation ${id} has already concluded (report: ${meta.report ?? 'none'})`);
  } else {
    if (!o.question?.trim()) throw new Error('give a question, e.g. neuroscope investigate "Which heads carry IOI?"');
    id = o.id ?? newInvestigationId();
    const now = new Date().toISOString();
    meta = { id, question: o.question.trim(), mode: o.llm ? 'llm' : 'protocol', created: now, updated: now, status: 'running' };
  }
  const dir = investigationDir(o.dataDir, id);
  emit({ type: 'started', id, resumed: !!o.resume });
  const deadline = o.timeMinutes ? Date.now() + o.timeMinutes * 60_000 : Infinity;

  if (meta.mode === 'protocol' || !o.llm) {
    if (meta.mode === 'llm') throw new Error(`investigation ${id} was run by an LLM (${meta.llm?.model} at ${meta.llm?.endpoint}); configure it again (OPENAI_API_KEY / OPENAI_BASE_URL) to resume`);
    const phenomenon = meta.phenomenon ?? matchPhenomenon(meta.question);
    if (!phenomenon) {
      throw new Error(`no LLM is configured (set OPENAI_API_KEY, or OPENAI_BASE_URL for a local server), and the question matches none of the built-in protocols: ${PHENOMENA.map((p) => PHENOMENON_NAMES[p]).join(', ')}. Mention one of them, or configure an LLM.`);
    }
    meta = { ...meta, mode: 'protocol', phenomenon, status: 'running' };
    writeMeta(dir, meta);
    emit({ type: 'note', message: `No LLM is configured: running the built-in ${PHENOMENON_NAMES[phenomenon]} protocol through the MCP tools. No LLM takes part.` });
    try {
      const r = await runProtocol({
        toolbox: o.toolbox, phenomenon, question: meta.question, investigationId: id, budget: o.budget, deadline, signal: o.signal,
        step: (message) => emit({ type: 'step', step: phenomenon, message }),
        handlers: {
          onToolStart: (e) => emit({ type: 'tool-start', ...e }),
          onToolEnd: (e) => emit({ type: 'tool-end', id: e.id, name: e.name, ok: e.ok, ms: e.ms, text: e.text, experimentIds: e.experimentIds, runIds: e.runIds, structured: e.structured }),
          onProgress: (e) => emit({ type: 'progress', ...e }),
        },
      });
      writeMeta(dir, { ...meta, status: 'concluded', report: r.finding.name });
      emit({ type: 'finding', name: r.finding.name, uri: r.finding.uri });
      return {
        id, mode: 'protocol', status: 'concluded', question: meta.question, report: r.finding, findings: [r.finding.name], toolCalls: r.toolCalls, usage: null, phenomenon,
        message: `No LLM took part: NeuroScope ran its built-in ${PHENOMENON_NAMES[phenomenon]} protocol (${r.toolCalls} tool calls). ${r.report.conclusion.replace(/\*\*/g, '')}`,
      };
    } catch (e) {
      const interrupted = isAbortError(e, o.signal);
      writeMeta(dir, { ...meta, status: interrupted ? 'interrupted' : 'failed', error: interrupted ? undefined : (e as Error).message });
      if (!interrupted) throw new InvestigationFailedError(id, resumeCommand(id), e);
      return { id, mode: 'protocol', status: 'interrupted', question: meta.question, report: null, findings: [], toolCalls: 0, usage: null, phenomenon, message: `interrupted; the protocol starts over with: ${resumeCommand(id)}` };
    }
  }

  // The LLM loop.
  const llm = o.llm;
  // Resuming needs only the newest checkpoint; one before it is kept (each holds the whole state).
  const saver = new FileCheckpointSaver(join(dir, 'checkpoints.json'), 2);
  const summary = await modelSummary(o.toolbox);
  emit({ type: 'note', message: `context budget: ${llm.context.describe()}; older tool results are summarised and older turns folded into a research log to stay under it` });
  const graph = buildInvestigationGraph({ llm, toolbox: o.toolbox, systemPrompt: loadPromptFile('system.md', { model: summary.line }), emit, signal: o.signal }, saver);
  const config = { configurable: { thread_id: id }, signal: o.signal, recursionLimit: 10_000 };
  let input: Partial<InvestigationState> | null;
  if (o.resume) {
    const snap = await graph.getState(config);
    if (!snap?.values || !(snap.values as InvestigationState).id) throw new Error(`investigation ${id} has no saved state to resume (${join(dir, 'checkpoints.json')})`);
    const saved = snap.values as InvestigationState;
    if (saved.usage) llm.usage.restore(saved.usage);
    const budget: Partial<Budget> = {};
    if (o.budget !== undefined) budget.toolCalls = o.budget;
    if (o.timeMinutes !== undefined) budget.timeMs = saved.spentMs + o.timeMinutes * 60_000;
    if (o.maxRounds !== undefined) budget.maxRounds = o.maxRounds;
    if (Object.keys(budget).length) await graph.updateState(config, { budget: { ...saved.budget, ...budget } });
    emit({ type: 'note', message: `resuming ${id} at ${snap.next.join(', ') || 'the end'} (${saved.hypotheses.length} hypotheses, ${saved.spentCalls} tool calls so far)` });
    input = null;
  } else {
    const state: InvestigationState = {
      id, question: meta.question, modelLine: summary.line, llm: { model: llm.model, endpoint: llm.endpoint, backend: llm.backend },
      budget: { toolCalls: o.budget ?? DEFAULT_BUDGET, timeMs: o.timeMinutes ? o.timeMinutes * 60_000 : null, maxHypotheses: o.maxHypotheses ?? 4, maxRounds: o.maxRounds ?? 12 },
      spentCalls: 0, spentMs: 0, hypotheses: [], messages: [], rounds: 0, next: '', report: null, usage: null, notes: [],
    };
    input = state;
    meta = { ...meta, mode: 'llm', llm: state.llm };
  }
  writeMeta(dir, { ...meta, status: 'running' });
  let final: InvestigationState;
  try {
    final = (await graph.invoke(input as never, config)) as InvestigationState;
  } catch (e) {
    if (!isAbortError(e, o.signal)) {
      writeMeta(dir, { ...meta, status: 'failed', error: (e as Error).message });
      throw new InvestigationFailedError(id, resumeCommand(id), e);
    }
    writeMeta(dir, { ...meta, status: 'interrupted' });
    const snap = await graph.getState({ configurable: { thread_id: id } });
    const s = snap.values as InvestigationState;
    return {
      id, mode: 'llm', status: 'interrupted', question: meta.question, report: null,
      findings: (s.hypotheses ?? []).flatMap((h) => (h.finding ? [h.finding.name] : [])), toolCalls: s.spentCalls ?? 0, usage: llm.usage.snapshot(),
      message: `interrupted at ${snap.next.join(', ') || 'the end'}; carry on with: ${resumeCommand(id)}`,
    };
  }
  writeMeta(dir, { ...meta, status: 'concluded', report: final.report?.name ?? null });
  const findings = [...final.hypotheses.flatMap((h) => (h.finding ? [h.finding.name] : [])), ...(final.report ? [final.report.name] : [])];
  return {
    id, mode: 'llm', status: 'concluded', question: meta.question, report: final.report, findings, toolCalls: final.spentCalls, usage: llm.usage.snapshot(),
    message: `${final.hypotheses.length} hypothesis(es) tested with ${final.spentCalls} tool calls${final.hypotheses.some((h) => measured(h.calls)) ? '' : '; no measurement was made, so the verdicts rest on no data'}; report: ${final.report?.name ?? '(not written)'}`,
  };
}
