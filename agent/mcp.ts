// The agent's only way to the research tools: an MCP client of NeuroScope's own server, with the
// tools loaded through @langchain/mcp-adapters, so the agent sees exactly what Claude Desktop or any
// other client sees. Three ways to reach the server: in-process (the server built around a
// workspace and linked by the SDK's in-memory transport), stdio (a `neuroscope mcp` child process),
// or Streamable HTTP (a running `neuroscope mcp --http`, with its bearer token).
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DynamicStructuredTool } from '@langchain/core/tools';
import { loadMcpTools } from '@langchain/mcp-adapters';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { getDefaultEnvironment, StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { Workspace } from '../tools/workspace.ts';
import type { ToolSpec } from './llm/types.ts';
import { idsOf } from './mcp-result.ts';

export const SERVER_NAME = 'neuroscope';
const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'neuroscope.js');

export type McpTarget =
  /** The server in this process, around a workspace the caller owns (or one opened here from model + dataDir). */
  | { kind: 'in-process'; workspace: Workspace | Promise<Workspace> }
  | { kind: 'in-process'; model?: string; dataDir?: string; threads?: number }
  /** `node bin/neuroscope.js mcp [--model M] [--data D]` as a child process (or another command). */
  | { kind: 'stdio'; model?: string; dataDir?: string; command?: string; args?: string[]; env?: Record<string, string> }
  | { kind: 'http'; url: string; token?: string };

export interface ToolProgressEvent {
  progress: number;
  total?: number;
  message?: string;
}

export interface ToolOutcome {
  ok: boolean;
  /** The result text (or error message) as the server sent it: what a language model reads. */
  text: string;
  /** The typed result (structuredContent, checked by the SDK client against the tool's outputSchema); null for errors. */
  structured: Record<string, unknown> | null;
  ms: number;
  experimentIds: string[];
  runIds: string[];
}

export interface CallOptions {
  signal?: AbortSignal;
  onProgress?: (p: ToolProgressEvent) => void;
}

export class McpToolError extends Error {
  constructor(readonly tool: string, message: string) {
    super(`${tool}: ${message}`);
  }
}

function contentText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content.map((b) => (typeof b === 'string' ? b : b && typeof b === 'object' && 'text' in b ? String((b as { text: unknown }).text) : JSON.stringify(b))).join('\n');
  }
  return JSON.stringify(content);
}

export class McpToolbox {
  private readonly byName: Map<string, DynamicStructuredTool>;

  private constructor(
    readonly client: Client,
    readonly tools: DynamicStructuredTool[],
    private readonly cleanup: () => Promise<void>,
    readonly description: string,
    private readonly toolTimeoutMs: number,
    private readonly stderrTail: () => string,
  ) {
    this.byName = new Map(tools.map((t) => [t.name, t]));
  }

  static async connect(target: McpTarget, opts: { toolTimeoutMs?: number; clientName?: string } = {}): Promise<McpToolbox> {
    const client = new Client({ name: opts.clientName ?? 'neuroscope-agent', version: '0.1.0' });
    const cleanups: (() => Promise<void>)[] = [];
    let transport: Transport;
    let description: string;
    let stderr = '';
    if (target.kind === 'in-process') {
      // The process's one in-process server for that workspace (its queue shared with every other
      // in-process client), or one opened here around a new workspace (closed with this toolbox).
      const { openInProcess, serveWorkspace } = await import('../mcp-server/in-process.ts');
      const host = 'workspace' in target ? serveWorkspace(target.workspace) : openInProcess(target);
      if (!('workspace' in target)) cleanups.push(() => host.close());
      const link = await host.link();
      cleanups.unshift(link.close);
      transport = link.transport;
      description = 'in-process NeuroScope MCP server';
    } else if (target.kind === 'stdio') {
      const args = target.args ?? [BIN, 'mcp', ...(target.model ? ['--model', target.model] : []), ...(target.dataDir ? ['--data', resolve(target.dataDir)] : [])];
      const env: Record<string, string> = { ...getDefaultEnvironment() };
      for (const [k, v] of Object.entries(process.env)) if (v !== undefined && k !== 'OPENAI_API_KEY') env[k] = v;
      const t = new StdioClientTransport({ command: target.command ?? process.execPath, args, env: { ...env, ...target.env }, stderr: 'pipe' });
      t.stderr?.on('data', (d: Buffer) => {
        stderr = (stderr + d.toString()).slice(-4000);
      });
      transport = t;
      description = `stdio: ${[target.command ?? 'node', ...args].join(' ')}`;
    } else {
      transport = new StreamableHTTPClientTransport(new URL(target.url), target.token ? { requestInit: { headers: { Authorization: `Bearer ${target.token}` } } } : undefined);
      description = `Streamable HTTP: ${target.url}`;
    }
    try {
      await client.connect(transport);
    } catch (e) {
      for (const c of cleanups) await c().catch(() => undefined);
      throw new Error(`could not connect to the NeuroScope MCP server (${description}): ${(e as Error).message}${stderr ? `\nserver stderr:\n${stderr}` : ''}`);
    }
    // The adapters' tools give the LLM its function specs (schemas simplified for models); calls go through the client.
    const tools = await loadMcpTools(SERVER_NAME, client, { throwOnLoadError: false });
    return new McpToolbox(client, tools, async () => {
      await client.close().catch(() => undefined);
      for (const c of cleanups) await c().catch(() => undefined);
    }, description, opts.toolTimeoutMs ?? 3_600_000, () => stderr);
  }

  /**
   * A toolbox over a client that is already connected (the chat's in-process client): the slash
   * commands and the agent then share one client, one server and its queue. Closing it closes the client.
   */
  static async fromClient(client: Client, description: string, opts: { toolTimeoutMs?: number } = {}): Promise<McpToolbox> {
    const tools = await loadMcpTools(SERVER_NAME, client, { throwOnLoadError: false });
    return new McpToolbox(client, tools, async () => client.close().catch(() => undefined), description, opts.toolTimeoutMs ?? 3_600_000, () => '');
  }

  names(): string[] {
    return [...this.byName.keys()];
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  /** The tools as OpenAI function specs (the schema the adapters simplified for LLMs). */
  specs(filter?: (name: string) => boolean): ToolSpec[] {
    return this.tools.filter((t) => !filter || filter(t.name)).map((t) => ({
      name: t.name,
      description: t.description,
      parameters: (t.schema && typeof t.schema === 'object' ? t.schema : { type: 'object', properties: {} }) as Record<string, unknown>,
    }));
  }

  /**
   * Calls a tool through the MCP client, which checks the structured result against the tool's
   * outputSchema; tool errors come back as { ok: false, text } (the server's own message), aborts throw.
   */
  async call(name: string, args: Record<string, unknown>, opts: CallOptions = {}): Promise<ToolOutcome> {
    const started = Date.now();
    const failed = (text: string): ToolOutcome => ({ ok: false, text, structured: null, ms: Date.now() - started, experimentIds: [], runIds: [] });
    if (!this.byName.has(name)) return failed(`there is no tool "${name}"; the tools are: ${this.names().join(', ')}`);
    try {
      const r = await this.client.callTool({ name, arguments: args }, undefined, {
        signal: opts.signal, timeout: this.toolTimeoutMs, resetTimeoutOnProgress: true,
        onprogress: opts.onProgress ? (p) => opts.onProgress!({ progress: p.progress, total: p.total, message: p.message }) : undefined,
      });
      const text = contentText((r as { content?: unknown }).content ?? '');
      if ((r as { isError?: boolean }).isError) return failed(text);
      const structured = ((r as { structuredContent?: Record<string, unknown> }).structuredContent) ?? null;
      return { ok: true, text, structured, ms: Date.now() - started, ...idsOf(structured) };
    } catch (e) {
      if (opts.signal?.aborted) throw e;
      const msg = (e as Error)?.message ?? String(e);
      const tail = this.stderrTail();
      return failed(/Connection closed|not connected/i.test(msg) && tail ? `${msg}\nserver stderr:\n${tail}` : msg);
    }
  }

  /** Calls a tool and returns its typed result; throws McpToolError with the server's message on failure. */
  async callParsed(name: string, args: Record<string, unknown>, opts: CallOptions = {}): Promise<{ data: Record<string, unknown>; text: string; outcome: ToolOutcome }> {
    const outcome = await this.call(name, args, opts);
    if (!outcome.ok) throw new McpToolError(name, outcome.text);
    return { data: outcome.structured ?? {}, text: outcome.text, outcome };
  }

  async listPrompts(): Promise<{ name: string; title?: string; description?: string }[]> {
    try {
      return (await this.client.listPrompts()).prompts.map((p) => ({ name: p.name, title: p.title, description: p.description }));
    } catch {
      return [];
    }
  }

  async readResource(uri: string): Promise<string> {
    const r = await this.client.readResource({ uri });
    return r.contents.map((c) => ('text' in c ? String(c.text) : '')).join('\n');
  }

  async close(): Promise<void> {
    await this.cleanup();
  }
}
