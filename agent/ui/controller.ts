// The chat's state and behaviour, outside React: the scrollback items, the status shown in the
// header, slash commands and agent turns, tool calls through the MCP client (cards with progress),
// cancellation, and the session log written as things happen. The Ink app only draws a snapshot.
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { exportSession } from '../transcripts/export.ts';
import { SessionLog } from '../transcripts/session.ts';
import { ArgError } from './args.ts';
import type { Investigator } from './agent-link.ts';
import type { Connection } from './connect.ts';
import { gridsOf, type Grid } from './results.ts';
import { runSlash } from './slash.ts';
import type { ToolCallView } from './ToolCard.tsx';

export type Tone = 'info' | 'error' | 'success';

export type ChatItem =
  | { kind: 'banner'; id: string }
  | { kind: 'user'; id: string; text: string }
  | { kind: 'assistant'; id: string; text: string; streaming: boolean }
  | { kind: 'tool'; id: string; call: ToolCallView }
  | { kind: 'note'; id: string; text: string; tone: Tone };

export interface ChatStatus {
  model: string | null;
  modelDir: string | null;
  /** "opening", "ready" or the error that kept the workspace closed. */
  workspace: 'opening' | 'ready' | { error: string };
  store: string;
  llm: string;
  session: string;
  busy: string | null;
}

export interface ChatSnapshot {
  items: ChatItem[];
  status: ChatStatus;
  /** Bumped by /clear: the app remounts its scrollback. */
  epoch: number;
  exiting: boolean;
}

/** Events an agent reports while it answers (the agent/ ChatSession's callbacks). */
export interface AgentHandlers {
  onToken?: (delta: string) => void;
  onToolStart?: (e: { id: string; name: string; args: unknown }) => void;
  onToolEnd?: (e: { id: string; name: string; result?: string; error?: string; isError?: boolean; structured?: unknown }) => void;
  onProgress?: (e: { id?: string; progress: number; total?: number; message?: string }) => void;
  signal?: AbortSignal;
}

/** What the chat needs of the research agent. */
export interface ChatAgent {
  /** For the header, e.g. "gpt-5 · api.openai.com". */
  label: string;
  send(text: string, h: AgentHandlers): Promise<unknown>;
  /** The budgeted hypothesis loop on a question, when the agent has one. */
  investigate?(question: string, h: AgentHandlers): Promise<unknown>;
  reset?(): void;
}

export interface ToolResult {
  ok: boolean;
  /** The text for language models (or the error message). */
  text: string;
  /** The typed result (structuredContent); {} for errors. */
  data: Record<string, any>;
}

export interface ToolCallOptions {
  /** Draw these grids instead of those read from the result (e.g. relabelled with tokens). */
  grids?: (r: ToolResult) => Grid[] | undefined;
  tableRows?: number;
  textLines?: number;
  maxTables?: number;
}

export interface ModelInfo {
  modelId: string;
  dir: string;
  layers: number;
  heads: number;
  experts: number;
  builtIn: boolean;
  dataDir: string;
}

export interface ControllerOptions {
  conn: Connection;
  agent?: ChatAgent | null;
  /** /investigate: the hypothesis loop, or the built-in protocols without an LLM. */
  investigator?: Investigator | null;
  /** Header text for the LLM when there is no agent (e.g. "none: set OPENAI_API_KEY..."). */
  llmLabel?: string;
  /** Where /export writes (default transcripts/). */
  transcriptsDir?: string;
  log?: SessionLog;
  onExit?: () => void;
}

/** Thrown by a command step to stop quietly after a failed tool card (the card shows why). */
export class StepFailed extends Error {}

let nextId = 0;
const uid = (p: string) => `${p}${++nextId}`;

export class ChatController {
  readonly conn: Connection;
  readonly client: Client;
  readonly log: SessionLog;
  agent: ChatAgent | null;
  investigator: Investigator | null;
  readonly transcriptsDir?: string;
  private items: ChatItem[] = [{ kind: 'banner', id: 'banner' }];
  private status: ChatStatus;
  private epoch = 0;
  private exiting = false;
  private snapshot: ChatSnapshot;
  private listeners = new Set<() => void>();
  private abort: AbortController | null = null;
  private modelInfoCache: ModelInfo | null = null;
  private onExit?: () => void;
  /** What earlier commands found, for later defaults (e.g. /ablate after /patch). */
  memory: { lastPatchTop?: string[] } = {};

  constructor(opts: ControllerOptions) {
    this.conn = opts.conn;
    this.client = opts.conn.client;
    this.agent = opts.agent ?? null;
    this.investigator = opts.investigator ?? null;
    this.transcriptsDir = opts.transcriptsDir;
    this.onExit = opts.onExit;
    const llm = this.agent ? this.agent.label : (opts.llmLabel ?? 'none');
    this.log = opts.log ?? new SessionLog(opts.conn.dataDir, undefined, { llm, dataDir: opts.conn.dataDir });
    this.status = { model: null, modelDir: null, workspace: 'opening', store: opts.conn.dataDir, llm, session: this.log.id, busy: null };
    this.snapshot = this.makeSnapshot();
  }

  // ----- snapshot / subscription (useSyncExternalStore) -----
  private makeSnapshot(): ChatSnapshot {
    return { items: this.items, status: this.status, epoch: this.epoch, exiting: this.exiting };
  }
  private emit() {
    this.snapshot = this.makeSnapshot();
    for (const l of this.listeners) l();
  }
  subscribe = (fn: () => void) => {
    this.listeners.add(fn);
    return () => {
      this.listeners.delete(fn);
    };
  };
  getSnapshot = () => this.snapshot;

  private setStatus(p: Partial<ChatStatus>) {
    this.status = { ...this.status, ...p };
    this.emit();
  }
  private add(item: ChatItem) {
    this.items = [...this.items, item];
    this.emit();
  }
  private update(id: string, f: (it: ChatItem) => ChatItem) {
    this.items = this.items.map((it) => (it.id === id ? f(it) : it));
    this.emit();
  }

  /** Waits for the workspace and fills the header from model_info. */
  async init(): Promise<void> {
    try {
      await this.conn.workspace;
    } catch (e) {
      // Native errors can carry whole stack traces: the first lines say what happened.
      const msg = (e as Error).message.split('\n').filter((l) => l.trim()).slice(0, 2).join(' ');
      this.setStatus({ workspace: { error: msg } });
      this.note(`The workspace could not be opened: ${msg}\n\nTools will fail until this is fixed (the full error is in chat.log of the data directory).`, 'error');
      this.conn.log?.(`workspace: ${(e as Error).stack ?? e}`);
      return;
    }
    try {
      await this.modelInfo(true);
      this.setStatus({ workspace: 'ready' });
    } catch (e) {
      this.setStatus({ workspace: { error: (e as Error).message } });
    }
  }

  /** model_info through MCP (cached until the model changes). */
  async modelInfo(refresh = false): Promise<ModelInfo> {
    if (this.modelInfoCache && !refresh) return this.modelInfoCache;
    const r = await this.quietTool('model_info', {});
    if (!r.ok) throw new ArgError(`model_info failed: ${r.text}`);
    const j = r.data;
    const info: ModelInfo = {
      modelId: String(j.modelId), dir: String(j.dir), layers: Number(j.architecture?.layers), heads: Number(j.architecture?.heads),
      experts: Number(j.architecture?.experts), builtIn: !!j.builtIn, dataDir: String(j.store?.dataDir ?? this.conn.dataDir),
    };
    this.modelInfoCache = info;
    if (info.modelId !== this.status.model) this.log.write({ type: 'model', at: this.log.now(), model: info.modelId });
    this.setStatus({ model: info.modelId, modelDir: info.dir, store: info.dataDir });
    return info;
  }

  note(text: string, tone: Tone = 'info') {
    this.add({ kind: 'note', id: uid('n'), text, tone });
    this.log.note(text, tone);
  }

  get busy() {
    return this.status.busy !== null;
  }

  get signal(): AbortSignal {
    return this.abort?.signal ?? new AbortController().signal;
  }

  /** Esc / Ctrl+C while busy: cancels the running command or agent turn. */
  cancel(): boolean {
    if (!this.abort) return false;
    this.abort.abort();
    return true;
  }

  quit() {
    this.cancel();
    this.exiting = true;
    this.emit();
    this.onExit?.();
  }

  clear() {
    this.items = [{ kind: 'banner', id: uid('banner') }];
    this.epoch++;
    this.agent?.reset?.();
    this.log.write({ type: 'clear', at: this.log.now() });
    this.emit();
  }

  async exportTranscript(file?: string): Promise<string> {
    return exportSession(this.log.file, { file, outDir: this.transcriptsDir });
  }

  /** A line the user typed. */
  async submit(raw: string): Promise<void> {
    const text = raw.replace(/\s+$/, '');
    if (!text.trim()) return;
    if (this.busy) {
      this.note(`Still working on "${this.status.busy}": wait, or press Esc to cancel it.`, 'error');
      return;
    }
    this.add({ kind: 'user', id: uid('u'), text });
    this.log.user(text);
    this.abort = new AbortController();
    const label = text.startsWith('/') ? text.split(/\s/)[0] : 'agent';
    this.setStatus({ busy: label });
    try {
      if (text.startsWith('/')) await runSlash(this, text);
      else await this.ask(text);
    } catch (e) {
      if (e instanceof StepFailed) {
        /* the failed card says why */
      } else if (this.abort?.signal.aborted) this.note('Cancelled.', 'info');
      else this.note(e instanceof ArgError ? e.message : `Error: ${(e as Error).message}`, 'error');
    } finally {
      this.abort = null;
      if (!this.exiting) this.setStatus({ busy: null });
    }
  }

  /** Sends a message to the agent, streaming its reply and tool cards. */
  async ask(text: string, investigate = false): Promise<void> {
    if (!this.agent) {
      this.note(
        'No language model is configured, so messages cannot be answered; slash commands work without one (try **/patch** or **/help**).\n\n' +
        'To chat, set `OPENAI_API_KEY` (and optionally `NEUROSCOPE_MODEL`), or `OPENAI_BASE_URL` for a local OpenAI-compatible server (vLLM, Ollama), then restart.',
        'error',
      );
      return;
    }
    const h = this.agentHandlers();
    try {
      if (investigate && this.agent.investigate) await this.agent.investigate(text, h);
      else await this.agent.send(investigate ? `Investigate this question with experiments, then write a finding: ${text}` : text, h);
    } finally {
      h.finish();
    }
  }

  /** /investigate: hypotheses, experiments (tool cards) and a finding; the built-in protocols without an LLM. */
  async investigate(question: string): Promise<void> {
    if (!this.investigator) {
      await this.ask(question, true);
      return;
    }
    const h = this.agentHandlers();
    const busy = this.status.busy;
    try {
      const r = await this.investigator(question, {
        signal: this.signal,
        onEvent: (e) => {
          switch (e.type) {
            case 'step': this.setStatus({ busy: `${busy}: ${e.message}` }); break;
            case 'hypothesis': this.note(`**Hypothesis ${e.n}:** ${e.statement}${e.prediction ? `\n\n_Prediction:_ ${e.prediction}` : ''}`); break;
            case 'design': this.note(`_Plan:_ ${e.plan}`); break;
            case 'tool-start': h.onToolStart?.({ id: e.id, name: e.name, args: e.args }); break;
            case 'progress': h.onProgress?.({ id: e.id, progress: e.progress, total: e.total, message: e.message }); break;
            case 'tool-end': h.onToolEnd?.({ id: e.id, name: e.name, result: e.ok ? e.text : undefined, error: e.ok ? undefined : e.text, isError: !e.ok }); break;
            case 'analysis': this.note(`**Verdict ${e.n}: ${e.verdict}.** ${e.result}`, e.verdict === 'supported' ? 'success' : 'info'); break;
            case 'finding': this.note(`Finding written: \`${e.name}\`${e.uri ? ` (${e.uri})` : ''}`, 'success'); break;
            case 'decision': this.note(`_Decision:_ ${e.decision}${e.reason ? ` (${e.reason})` : ''}`); break;
            case 'retry': this.note(`LLM: ${e.reason}; retry ${e.attempt} in ${(e.delayMs / 1000).toFixed(1)} s`); break;
            case 'note': this.note(e.message); break;
            default: break;
          }
        },
      });
      const report = r.report ? `\n\nReport: \`${r.report.path ?? r.report.name}\`${r.report.name ? ` (read it with /findings ${r.report.name})` : ''}` : '';
      this.note(`${r.message}${report}\n\nInvestigation \`${r.id}\` (${r.status}).`, r.status === 'concluded' ? 'success' : 'info');
    } finally {
      h.finish();
    }
  }

  private agentHandlers(): AgentHandlers & { finish: () => void } {
    let current: string | null = null;
    let text = '';
    let lastPartial = 0;
    const cards = new Map<string, string>();
    const started = new Map<string, number>();
    const endSegment = () => {
      if (current === null) return;
      const id = current;
      this.update(id, (it) => ({ ...it, streaming: false }) as ChatItem);
      if (text.trim()) this.log.assistant(text);
      current = null;
      text = '';
    };
    return {
      signal: this.signal,
      onToken: (delta) => {
        if (!delta) return;
        if (current === null) {
          current = uid('a');
          text = '';
          this.add({ kind: 'assistant', id: current, text: '', streaming: true });
        }
        text += delta;
        const t = text;
        this.update(current, (it) => ({ ...it, text: t }) as ChatItem);
        if (Date.now() - lastPartial > 1000) {
          lastPartial = Date.now();
          this.log.assistant(text, true);
        }
      },
      onToolStart: (e) => {
        endSegment();
        const id = uid('t');
        cards.set(e.id, id);
        started.set(e.id, Date.now());
        this.add({ kind: 'tool', id, call: { id: e.id, name: e.name, args: e.args, status: 'running', startedAt: Date.now() } });
        this.log.write({ type: 'tool_start', at: this.log.now(), id: e.id, name: e.name, args: e.args });
      },
      onProgress: (e) => {
        const id = e.id !== undefined ? cards.get(e.id) : [...cards.values()].pop();
        if (!id) return;
        this.update(id, (it) => (it.kind === 'tool' ? { ...it, call: { ...it.call, progress: { done: e.progress, total: e.total, message: e.message } } } : it));
      },
      onToolEnd: (e) => {
        const id = cards.get(e.id);
        const failed = !!e.isError || e.error !== undefined;
        const text = e.result ?? e.error ?? '';
        const grids = failed ? [] : gridsOf(e.structured);
        const status = failed ? (this.abort?.signal.aborted ? 'cancelled' : 'error') : 'done';
        const ms = Date.now() - (started.get(e.id) ?? Date.now());
        if (id) {
          this.update(id, (it) => (it.kind === 'tool' ? {
            ...it, call: { ...it.call, status, endedAt: Date.now(), resultText: failed ? undefined : text, error: failed ? text : undefined, structured: e.structured },
          } : it));
        }
        this.log.write({ type: 'tool_end', at: this.log.now(), id: e.id, name: e.name, status, result: failed ? undefined : text, structured: failed ? undefined : e.structured, error: failed ? text : undefined, ms, grids: grids.length ? grids : undefined });
      },
      finish: endSegment,
    };
  }

  private async rawCall(name: string, args: Record<string, unknown>, onProgress?: (p: { progress: number; total?: number; message?: string }) => void): Promise<ToolResult> {
    const r = await this.client.callTool({ name, arguments: args }, undefined, {
      signal: this.abort?.signal,
      timeout: 24 * 3600_000,
      resetTimeoutOnProgress: true,
      ...(onProgress ? { onprogress: (p: { progress: number; total?: number; message?: string }) => onProgress(p) } : {}),
    });
    const content = (r.content ?? []) as { type: string; text?: string }[];
    const text = content.filter((c) => c.type === 'text').map((c) => c.text ?? '').join('\n');
    return { ok: !r.isError, text, data: (r.structuredContent as Record<string, any> | undefined) ?? {} };
  }

  /** A tool call without a card (for defaults and labels). */
  async quietTool(name: string, args: Record<string, unknown>): Promise<ToolResult> {
    return this.rawCall(name, args);
  }

  /** A tool call shown as a card with progress; logged. Throws StepFailed when the tool fails. */
  async tool(name: string, args: Record<string, unknown>, opts: ToolCallOptions = {}): Promise<ToolResult> {
    const callId = uid('c');
    const id = uid('t');
    const startedAt = Date.now();
    this.add({ kind: 'tool', id, call: { id: callId, name, args, status: 'running', startedAt, tableRows: opts.tableRows, textLines: opts.textLines, maxTables: opts.maxTables } });
    this.log.write({ type: 'tool_start', at: this.log.now(), id: callId, name, args });
    let r: ToolResult;
    try {
      r = await this.rawCall(name, args, (p) => {
        this.update(id, (it) => (it.kind === 'tool' ? { ...it, call: { ...it.call, progress: { done: p.progress, total: p.total, message: p.message } } } : it));
      });
    } catch (e) {
      const aborted = this.abort?.signal.aborted;
      const msg = aborted ? `${name} was cancelled` : (e as Error).message;
      this.update(id, (it) => (it.kind === 'tool' ? { ...it, call: { ...it.call, status: aborted ? 'cancelled' : 'error', endedAt: Date.now(), error: msg } } : it));
      this.log.write({ type: 'tool_end', at: this.log.now(), id: callId, name, status: aborted ? 'cancelled' : 'error', error: msg, ms: Date.now() - startedAt });
      throw new StepFailed(msg);
    }
    const endedAt = Date.now();
    if (!r.ok) {
      const cancelled = this.abort?.signal.aborted ?? false;
      this.update(id, (it) => (it.kind === 'tool' ? { ...it, call: { ...it.call, status: cancelled ? 'cancelled' : 'error', endedAt, error: r.text } } : it));
      this.log.write({ type: 'tool_end', at: this.log.now(), id: callId, name, status: cancelled ? 'cancelled' : 'error', error: r.text, ms: endedAt - startedAt });
      throw new StepFailed(r.text);
    }
    let grids: Grid[] | undefined;
    try {
      grids = opts.grids?.(r);
    } catch {
      grids = undefined;
    }
    const shown = grids ?? gridsOf(r.data);
    this.update(id, (it) => (it.kind === 'tool' ? { ...it, call: { ...it.call, status: 'done', endedAt, resultText: r.text, structured: r.data, grids } } : it));
    this.log.write({ type: 'tool_end', at: this.log.now(), id: callId, name, status: 'done', result: r.text, structured: r.data, ms: endedAt - startedAt, grids: shown.length ? shown : undefined });
    return r;
  }

  /** A card for work that is not one MCP tool call (the suite): progress via the returned functions. */
  startCard(name: string, args: Record<string, unknown>) {
    const callId = uid('c');
    const id = uid('t');
    const startedAt = Date.now();
    this.add({ kind: 'tool', id, call: { id: callId, name, args, status: 'running', startedAt } });
    this.log.write({ type: 'tool_start', at: this.log.now(), id: callId, name, args });
    return {
      progress: (done: number, total: number, message: string) =>
        this.update(id, (it) => (it.kind === 'tool' ? { ...it, call: { ...it.call, progress: { done, total, message } } } : it)),
      end: (status: 'done' | 'error' | 'cancelled', text: string) => {
        const endedAt = Date.now();
        this.update(id, (it) => (it.kind === 'tool' ? { ...it, call: { ...it.call, status, endedAt, ...(status === 'done' ? { resultText: text } : { error: text }) } } : it));
        this.log.write({ type: 'tool_end', at: this.log.now(), id: callId, name, status, ...(status === 'done' ? { result: text } : { error: text }), ms: endedAt - startedAt });
      },
    };
  }

  /** The model changed (load_model): refresh the header. */
  async modelChanged(): Promise<void> {
    this.modelInfoCache = null;
    await this.modelInfo(true);
  }
}
