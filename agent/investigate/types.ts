// The state of an investigation as the LangGraph graph carries it (plain JSON, checkpointed).
import type { ChatMessage } from '../llm/types.ts';
import type { UsageSnapshot } from '../llm/usage.ts';

export interface ToolCallLog {
  id: string;
  tool: string;
  args: Record<string, unknown> | null;
  rawArguments: string;
  ran: boolean;
  ok: boolean;
  /** The start of the result (or the error), as the model saw it. */
  result: string;
  /** The result's scalar fields in one line, from the structured result ("clean 1.71, corrupted 0.903"). */
  summary?: string;
  experimentIds: string[];
  runIds: string[];
  ms: number;
}

export type Verdict = 'supported' | 'refuted' | 'inconclusive';
export type Decision = 'refine' | 'alternative' | 'conclude';

export interface Hypothesis {
  n: number;
  statement: string;
  prediction: string;
  rationale: string;
  /** How it came about: the first, a refinement or an alternative of the previous one. */
  origin: 'initial' | Exclude<Decision, 'conclude'>;
  design?: { plan: string; controls: string; metric: string };
  calls: ToolCallLog[];
  /** The model's summary at the end of the experiment step. */
  summary?: string;
  analysis?: {
    result: string;
    effectSizes: string;
    verdict: Verdict;
    evidence: string[];
    sql: string[];
    /** Ids the model cited that no tool returned in this investigation. */
    unverified: string[];
  };
  finding?: { name: string; uri?: string; path?: string };
  decision?: { decision: Decision; reason: string; next: string };
}

export interface Budget {
  /** Tool calls the model may make in experiments (recording findings is not counted). */
  toolCalls: number;
  /** Wall-clock time the loop may run, summed over resumes; null = no limit. */
  timeMs: number | null;
  maxHypotheses: number;
  /** LLM requests per experiment before it must be analysed. */
  maxRounds: number;
}

export interface ReportRef {
  name: string;
  uri?: string;
  path?: string;
}

export interface InvestigationState {
  id: string;
  question: string;
  modelLine: string;
  llm: { model: string; endpoint: string; backend: string };
  budget: Budget;
  spentCalls: number;
  spentMs: number;
  hypotheses: Hypothesis[];
  /** The current experiment's conversation (assistant tool calls and tool results). */
  messages: ChatMessage[];
  rounds: number;
  /** Where the graph goes next (set by the node that decides). */
  next: string;
  report: ReportRef | null;
  usage: UsageSnapshot | null;
  notes: string[];
}

export type InvestigationEvent =
  | { type: 'step'; step: string; hypothesis?: number; message: string }
  | { type: 'hypothesis'; n: number; statement: string; prediction: string }
  | { type: 'design'; n: number; plan: string }
  | { type: 'started'; id: string; resumed: boolean }
  | { type: 'tool-start'; id: string; name: string; args: Record<string, unknown> }
  | { type: 'tool-refused'; id: string; name: string; reason: string }
  | { type: 'tool-end'; id: string; name: string; ok: boolean; ms: number; text: string; experimentIds: string[]; runIds: string[]; structured?: Record<string, unknown> | null }
  | { type: 'progress'; id: string; name: string; progress: number; total?: number; message?: string }
  | { type: 'analysis'; n: number; verdict: Verdict; result: string }
  | { type: 'finding'; name: string; uri?: string }
  | { type: 'decision'; decision: Decision; reason: string }
  | { type: 'token'; step: string; delta: string }
  | { type: 'retry'; status?: number; delayMs: number; attempt: number; maxRetries: number; reason: string }
  | { type: 'note'; message: string };
