// The research agent (agent/chat.ts ChatSession) behind the chat's ChatAgent interface. The agent
// reaches the tools through the chat's one MCP toolbox (the same client the slash commands use).
// Created on the first message, so starting the chat never waits for the LLM or the model.
import { resolveLlmConfig } from '../llm/config.ts';
import type { InvestigationEvent } from '../investigate/index.ts';
import type { McpToolbox } from '../mcp.ts';
import type { AgentHandlers, ChatAgent } from './controller.ts';

export interface InvestigationOutcome {
  id: string;
  status: 'concluded' | 'interrupted';
  message: string;
  report: { name: string; uri?: string; path?: string } | null;
}

/** The hypothesis loop (with an LLM) or the built-in protocols (without), on one question. */
export type Investigator = (question: string, o: { signal: AbortSignal; onEvent: (e: InvestigationEvent) => void }) => Promise<InvestigationOutcome>;

export interface AgentLink {
  agent: ChatAgent | null;
  /** Header text: the model and endpoint, or why there is none. */
  label: string;
  investigate: Investigator;
}

export const NO_LLM_LABEL = 'none · slash commands only (set OPENAI_API_KEY or OPENAI_BASE_URL to chat)';

export function linkAgent(toolbox: Promise<McpToolbox>, dataDir: string, flags: { llmModel?: string; baseURL?: string } = {}): AgentLink {
  const tools = () => toolbox;
  let cfg: ReturnType<typeof resolveLlmConfig> = null;
  let cfgError: string | null = null;
  try {
    cfg = resolveLlmConfig({ model: flags.llmModel, baseURL: flags.baseURL });
  } catch (e) {
    cfgError = (e as Error).message;
  }
  const investigate: Investigator = async (question, o) => {
    const { investigate: run } = await import('../investigate/index.ts');
    const llm = cfg ? (await import('../llm/index.ts')).createChatModel(cfg) : null;
    return run({ question, toolbox: await tools(), dataDir, llm, signal: o.signal, onEvent: o.onEvent });
  };
  if (cfgError) return { agent: null, label: `none · ${cfgError}`, investigate };
  if (!cfg) return { agent: null, label: NO_LLM_LABEL, investigate };
  const host = (() => {
    try {
      return new URL(cfg.baseURL ?? 'https://api.openai.com/v1').host;
    } catch {
      return cfg.baseURL ?? '';
    }
  })();
  const label = `${cfg.model} · ${host}`;
  const config = cfg;
  type Session = import('../chat.ts').ChatSession;
  let session: Promise<Session> | null = null;
  const open = (): Promise<Session> => (session ??= (async () => {
    const { createChatModel } = await import('../llm/index.ts');
    const { ChatSession } = await import('../chat.ts');
    return ChatSession.create({ toolbox: await tools(), llm: createChatModel(config) });
  })().catch((e) => {
    session = null;
    throw e;
  }));
  const send = async (text: string, h: AgentHandlers) => {
    const s = await open();
    return s.send(text, {
      signal: h.signal,
      onToken: h.onToken,
      onToolStart: (e) => h.onToolStart?.({ id: e.id, name: e.name, args: e.args }),
      onToolEnd: (e) => h.onToolEnd?.({ id: e.id, name: e.name, result: e.ok ? e.text : undefined, structured: e.ok ? e.structured ?? undefined : undefined, error: e.ok ? undefined : e.text, isError: !e.ok }),
      onProgress: (e) => h.onProgress?.({ id: e.id, progress: e.progress, total: e.total, message: e.message }),
    });
  };
  const agent: ChatAgent = {
    label,
    send,
    reset: () => {
      void session?.then((s) => s.reset()).catch(() => undefined);
    },
  };
  return { agent, label, investigate };
}
