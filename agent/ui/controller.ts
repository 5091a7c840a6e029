// The chat's state and behaviour, outside React: the scrollback items, the status shown in the
// header, slash commands and agent turns, tool calls through the MCP client (cards with progress),
// cancellation, and the session log written as things happen. The Ink app only draws a snapshot.
import type { ToolContext } from '../../tools/define.ts';
import type { McpToolbox } from '../mcp.ts';
import { exportSession } from '../transcripts/export.ts';
import { SessionLog } from '../transcripts/session.ts';
import { ArgError } from './args.ts';
import type { Investigator } from './agent-link.ts';
import { openCard, type Card, type CardSink } from './cards.ts';
import type { Connection } from './connect.ts';
import { StepFailed, type CommandHost, type ModelInfo, type Tone, type ToolCallOptions, type ToolResult } from './host.ts';
import { runSlash } from './slash.ts';
import type { ToolCallView } from './ToolCard.tsx';

export { StepFailed, type ModelInfo, type Tone, type ToolCallOptions, type ToolResult } from './host.ts';

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

export interface ControllerOptions {
  /** The in-process server's workspace, queue and data directory (agent/ui/connect.ts). */
  conn: Pick<Connection, 'workspace' | 'shared' | 'dataDir' | 'log'>;
  /**
   * The chat's one MCP toolbox: slash commands (and the agent, agent/ui/agent-link.ts) call tools
   * through it. A promise is fine: loading it (the LangChain adapters) takes seconds, the first frame must not wait.
   */
  toolbox: McpToolbox | Promise<McpToolbox>;
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

let nextId = 0;
const uid = (p: string) => `${p}${++nextId}`;

export class ChatController implements CommandHost {
  private readonly conn: ControllerOptions['conn'];
  private readonly toolbox: Promise<McpToolbox>;
  /** The toolbox once loaded (for tool names in error hints). */
  private box: McpToolbox | null = null;
  /** Output schemas by tool (tools/list), read once. */
  private outputSchemas = new Map<string, unknown>();
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
  private readonly sink: CardSink;
  /** What earlier commands found, for later defaults (e.g. /ablate after /patch). */
  memory: { lastPatchTop?: string[] } = {};

  constructor(opts: ControllerOptions) {
    this.conn = opts.conn;
    this.toolbox = Promise.resolve(opts.toolbox).then(async (b) => {
      this.box = b;
      for (const t of (await b.client.listTools()).tools) this.outputSchemas.set(t.name, t.outputSchema);
      return b;
    });
    this.toolbox.catch(() => undefined); // reported by the first call
    this.agent = opts.agent ?? null;
    this.investigator = opts.investigator ?? null;
    this.transcriptsDir = opts.transcriptsDir;
    this.onExit = opts.onExit;
    const llm = this.agent ? this.agent.label : (opts.llmLabel ?? 'none');
    this.log = opts.log ?? new SessionLog(opts.conn.dataDir, undefined, { llm, dataDir: opts.conn.dataDir });
    // Where cards go: this chat's scrollback and session log.
    this.sink = {
      addCard: (id, call) => this.add({ kind: 'tool', id, call }),
      updateCard: (id, f) => this.update(id, (it) => (it.kind === 'tool' ? { ...it, call: f(it.call) } : it)),
      log: this.log,
      cancelled: () => this.abort?.signal.aborted ?? false,
      toolNames: () => this.box?.names() ?? [],
      outputSchema: (tool) => this.outputSchemas.get(tool),
    };
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
      const { PHENOMENON_NAMES } = await import('../protocols/index.ts');
      this.note(
        'No language model is configured, so messages cannot be answered. Without one:\n\n' +
        '- **/investigate** *question* runs a built-in protocol (experiments and a written finding) for questions about ' +
        `${Object.values(PHENOMENON_NAMES).join(', ')}; e.g. \`/investigate ${text.length <= 60 ? text.replace(/`/g, "'") : 'Which heads carry IOI?'}\`\n` +
        '- the slash commands run single experiments (try **/patch**, or **/help** for all)\n\n' +
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
            case 'tool-end': h.onToolEnd?.({ id: e.id, name: e.name, result: e.ok ? e.text : undefined, error: e.ok ? undefined : e.text, isError: !e.ok, structured: e.structured ?? undefined }); break;
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
    const cards = new Map<string, Card>();
    let lastCard: Card | undefined;
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
        lastCard = openCard(this.sink, e.name, e.args, {}, e.id);
        cards.set(e.id, lastCard);
      },
      onProgress: (e) => (e.id !== undefined ? cards.get(e.id) : lastCard)?.progress(e),
      onToolEnd: (e) => {
        const failed = !!e.isError || e.error !== undefined;
        cards.get(e.id)?.end({ ok: !failed, text: e.result ?? e.error ?? '', structured: failed ? undefined : e.structured });
      },
      finish: endSegment,
    };
  }

  private async call(name: string, args: Record<string, unknown>, onProgress?: (p: { progress: number; total?: number; message?: string }) => void): Promise<ToolResult> {
    const r = await (await this.toolbox).call(name, args, { signal: this.abort?.signal, onProgress });
    return { ok: r.ok, text: r.text, data: r.structured ?? {} };
  }

  async quietTool(name: string, args: Record<string, unknown>): Promise<ToolResult> {
    return this.call(name, args);
  }

  async tools(): Promise<{ name: string; description: string }[]> {
    return (await this.toolbox).tools.map((t) => ({ name: t.name, description: t.description }));
  }

  async readResource(uri: string): Promise<string> {
    return (await this.toolbox).readResource(uri);
  }

  async tool(name: string, args: Record<string, unknown>, opts: ToolCallOptions = {}): Promise<ToolResult> {
    const { grids, ...display } = opts;
    const card = openCard(this.sink, name, args, display);
    let r: ToolResult;
    try {
      r = await this.call(name, args, (p) => card.progress(p));
    } catch (e) {
      card.end({ ok: false, text: (e as Error).message });
      throw new StepFailed((e as Error).message);
    }
    if (!r.ok) {
      card.end({ ok: false, text: r.text });
      throw new StepFailed(r.text);
    }
    let drawn;
    try {
      drawn = grids?.(r);
    } catch {
      drawn = undefined;
    }
    card.end({ ok: true, text: r.text, structured: r.data, grids: drawn });
    return r;
  }

  card(name: string, args: Record<string, unknown>): Card {
    return openCard(this.sink, name, args);
  }

  async inProcess<T>(fn: (ctx: ToolContext) => Promise<T>): Promise<T> {
    const ws = await this.conn.workspace;
    const signal = this.signal;
    return this.conn.shared.mutex.run(() => fn({ ...ws.ctx, signal }), signal);
  }

  /** The model changed (load_model): refresh the header. */
  async modelChanged(): Promise<void> {
    this.modelInfoCache = null;
    await this.modelInfo(true);
  }
}
