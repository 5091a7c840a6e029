// The research agent (agent/chat.ts ChatSession) behind the chat's ChatAgent interface. The agent
// reaches the tools through its own MCP client of a server around the same workspace. Created on
// the first message, so starting the chat never waits for the LLM or the model.
import { resolveLlmConfig } from '../llm/config.ts';
import type { Connection } from './connect.ts';
import type { AgentHandlers, ChatAgent } from './controller.ts';

export interface AgentLink {
  agent: ChatAgent | null;
  /** Header text: the model and endpoint, or why there is none. */
  label: string;
}

export const NO_LLM_LABEL = 'none · slash commands only (set OPENAI_API_KEY or OPENAI_BASE_URL to chat)';

export function linkAgent(conn: Connection, flags: { llmModel?: string; baseURL?: string } = {}): AgentLink {
  let cfg;
  try {
    cfg = resolveLlmConfig({ model: flags.llmModel, baseURL: flags.baseURL });
  } catch (e) {
    return { agent: null, label: `none · ${(e as Error).message}` };
  }
  if (!cfg) return { agent: null, label: NO_LLM_LABEL };
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
    const { McpToolbox } = await import('../mcp.ts');
    const { ChatSession } = await import('../chat.ts');
    const toolbox = await McpToolbox.connect({ kind: 'in-process', workspace: conn.workspace }, { clientName: 'neuroscope-chat-agent' });
    return ChatSession.create({ toolbox, llm: createChatModel(config) });
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
      onToolEnd: (e) => h.onToolEnd?.({ id: e.id, name: e.name, result: e.ok ? e.text : undefined, error: e.ok ? undefined : e.text, isError: !e.ok }),
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
  return { agent, label };
}
