// The MCP binding of tools/: every tool in TOOLS (name, description, zod schema as JSON Schema),
// the findings / runs / schema resources and the experiment prompts. One workspace (model + store)
// and one queue are shared by every connected client; each call gets the request's AbortSignal and
// reports progress when the client asked for it.
import { McpServer, ResourceTemplate } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js';
import {
  CallToolRequestSchema, ErrorCode, ListToolsRequestSchema, McpError,
  type CallToolResult, type ServerNotification, type ServerRequest, type Tool as McpTool,
} from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { callTool, toolInput, toolOutput, type Tool, type ToolContext, type ToolProgress } from '../tools/define.ts';
import { findingFileNames, findingUri, readFinding } from '../tools/findings.ts';
import { TOOLS } from '../tools/index.ts';
import { checkRequestSize } from '../tools/limits.ts';
import { storeSchemaMarkdown } from '../tools/store-tools.ts';
import { renderTable } from '../tools/tables.ts';
import type { Workspace } from '../tools/workspace.ts';
import { renderResult } from './render.ts';
import { CancelledWhileQueued, Mutex } from './mutex.ts';
import { loadExperimentPrompts, renderPrompt, type ExperimentPrompt } from './prompts.ts';

export const SERVER_NAME = 'neuroscope';
export const SERVER_VERSION = '0.1.0';

/** The tools of the list; those not in TOOLS yet are reported, never faked. */
export const PLANNED_TOOLS = [
  'model_info', 'load_model', 'list_hooks', 'tokenize', 'generate', 'capture_activations', 'patch_activations', 'path_patch',
  'ablate', 'steer', 'train_probe', 'pca', 'logit_lens', 'direct_logit_attribution', 'attention_patterns', 'expert_routing',
  'similarity_search', 'find_circuit', 'query_activations', 'describe_store', 'write_finding', 'list_findings',
] as const;

const READ_ONLY = new Set(['model_info', 'list_hooks', 'tokenize', 'query_activations', 'describe_store', 'list_findings']);

/** State shared by every MCP session of a process. */
export interface SharedState {
  /** Resolves to the workspace once the model and store are open (rejects with the reason they could not be). */
  workspace: Promise<Workspace>;
  mutex: Mutex;
  tools: readonly Tool[];
  prompts: ExperimentPrompt[];
  log: (message: string) => void;
  /** Aborted when the process shuts down: running calls are cancelled (their writes roll back)
   *  and new ones are refused. */
  stopping: AbortController;
}

export function createSharedState(workspace: Promise<Workspace>, opts: { tools?: readonly Tool[]; prompts?: ExperimentPrompt[]; log?: (m: string) => void } = {}): SharedState {
  // A failed open is reported on every call; do not let it count as an unhandled rejection.
  workspace.catch(() => undefined);
  return {
    workspace,
    mutex: new Mutex(),
    tools: opts.tools ?? TOOLS,
    prompts: opts.prompts ?? loadExperimentPrompts(),
    log: opts.log ?? ((m) => process.stderr.write(`[neuroscope mcp] ${m}\n`)),
    stopping: new AbortController(),
  };
}

export function missingTools(tools: readonly Tool[] = TOOLS): string[] {
  const have = new Set(tools.map((t) => t.name));
  return PLANNED_TOOLS.filter((n) => !have.has(n));
}

const inputCache = new WeakMap<Tool, McpTool['inputSchema']>();
const outputCache = new WeakMap<Tool, NonNullable<McpTool['outputSchema']>>();

/**
 * A zod schema as the JSON Schema MCP clients read (draft-07, which the SDK's validator speaks),
 * without the safe-integer bounds zod puts on every integer (they say nothing a JSON integer does
 * not, and cost about 10k characters over the tool list an LLM reads).
 */
function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): Record<string, unknown> {
  const js = z.toJSONSchema(schema, {
    io, target: 'draft-7', unrepresentable: 'any',
    override: ({ jsonSchema: s }) => {
      if (s.type !== 'integer') return;
      if (s.minimum === Number.MIN_SAFE_INTEGER) delete s.minimum;
      if (s.maximum === Number.MAX_SAFE_INTEGER) delete s.maximum;
    },
  }) as Record<string, unknown>;
  delete js.$schema;
  return { ...js, type: 'object' };
}

export function inputJsonSchema(tool: Tool): McpTool['inputSchema'] {
  let s = inputCache.get(tool);
  if (!s) inputCache.set(tool, (s = jsonSchema(toolInput(tool), 'input') as McpTool['inputSchema']));
  return s;
}

/** The tool's result schema, advertised as outputSchema: clients validate structuredContent against it. */
export function outputJsonSchema(tool: Tool): NonNullable<McpTool['outputSchema']> {
  let s = outputCache.get(tool);
  if (!s) outputCache.set(tool, (s = jsonSchema(toolOutput(tool), 'output') as NonNullable<McpTool['outputSchema']>));
  return s;
}

export function errorMessage(e: unknown): string {
  if (e instanceof Error) return e.message || e.name;
  return String(e);
}

const toolError = (text: string): CallToolResult => ({ content: [{ type: 'text', text }], isError: true });

type Extra = RequestHandlerExtra<ServerRequest, ServerNotification>;

/** Maps tool progress (which may restart per stage) to strictly increasing MCP progress notifications. */
function progressReporter(extra: Extra): ((p: ToolProgress) => void) | undefined {
  const token = extra._meta?.progressToken;
  if (token === undefined) return undefined;
  let offset = 0;
  let lastDone = -Infinity;
  let lastTotal = 0;
  let sent = 0;
  return (p) => {
    if (p.done < lastDone) offset += lastTotal;
    lastDone = p.done;
    lastTotal = p.total;
    const progress = offset + p.done;
    if (!(progress > sent) || extra.signal.aborted) return;
    sent = progress;
    extra.sendNotification({
      method: 'notifications/progress',
      params: { progressToken: token, progress, total: offset + p.total, ...(p.message ? { message: p.message } : {}) },
    }).catch(() => undefined);
  };
}

async function callOne(shared: SharedState, tool: Tool, args: unknown, extra: Extra): Promise<CallToolResult> {
  let ws: Workspace;
  try {
    ws = await shared.workspace;
  } catch (e) {
    return toolError(`the NeuroScope workspace could not be opened, so no tool can run: ${errorMessage(e)}`);
  }
  if (shared.stopping.signal.aborted) return toolError(`${tool.name} was not run: the NeuroScope server is shutting down`);
  const signal = AbortSignal.any([extra.signal, shared.stopping.signal]);
  const started = Date.now();
  try {
    const run = async () => {
      // Built inside the lock: ctx.session is whichever model is loaded now.
      const ctx: ToolContext = { ...ws.ctx, signal, onProgress: progressReporter(extra) };
      checkRequestSize(tool.name, args);
      return callTool(tool, args, ctx);
    };
    // Store reads (SQL, schema) run beside the queue: a slow query never holds up other clients.
    const result = tool.storeReadOnly ? await run() : await shared.mutex.run(run, signal);
    const structured = result as Record<string, unknown>;
    return { content: [{ type: 'text', text: renderResult(structured) }], structuredContent: structured };
  } catch (e) {
    if (signal.aborted || e instanceof CancelledWhileQueued) {
      shared.log(`${tool.name} cancelled after ${Date.now() - started} ms`);
      return toolError(`${tool.name} was cancelled`);
    }
    return toolError(errorMessage(e));
  }
}

/** One MCP server (one per client connection) over the shared workspace. */
export function createMcpServer(shared: SharedState): McpServer {
  const mcp = new McpServer(
    { name: SERVER_NAME, version: SERVER_VERSION },
    {
      instructions:
        'NeuroScope: mechanistic interpretability of gpt-oss. Start with model_info and list_hooks; tokenize prompts before patching; ' +
        'experiments store their full results in DuckDB (query_activations, describe_store); record conclusions with write_finding. ' +
        'Prompts hold protocols for the five standard experiments.',
    },
  );
  const byName = new Map(shared.tools.map((t) => [t.name, t]));
  mcp.server.registerCapabilities({ tools: { listChanged: false } });
  mcp.server.setRequestHandler(ListToolsRequestSchema, async () => ({
    tools: shared.tools.map((t) => ({
      name: t.name,
      description: t.description,
      inputSchema: inputJsonSchema(t),
      outputSchema: outputJsonSchema(t),
      annotations: { readOnlyHint: READ_ONLY.has(t.name), openWorldHint: false },
    })),
  }));
  mcp.server.setRequestHandler(CallToolRequestSchema, async (req, extra) => {
    const tool = byName.get(req.params.name);
    if (!tool) return toolError(`unknown tool "${req.params.name}"; the tools are: ${[...byName.keys()].join(', ')}`);
    return callOne(shared, tool, req.params.arguments ?? {}, extra);
  });
  registerResources(mcp, shared);
  registerPrompts(mcp, shared);
  return mcp;
}

async function ready(shared: SharedState): Promise<Workspace> {
  try {
    return await shared.workspace;
  } catch (e) {
    throw new McpError(ErrorCode.InternalError, `the NeuroScope workspace could not be opened: ${errorMessage(e)}`);
  }
}

const RUN_ID = /^[A-Za-z0-9_.:-]{1,200}$/;

async function runMarkdown(ws: Workspace, runId: string): Promise<string> {
  if (!RUN_ID.test(runId)) throw new McpError(ErrorCode.InvalidParams, `"${runId}" is not a run id (run ids look like run_...)`);
  const store = ws.ctx.store;
  const run = await store.getRun(runId);
  if (!run) throw new McpError(ErrorCode.InvalidParams, `there is no run ${runId}; query_activations: SELECT run_id, prompt FROM runs`);
  const acts = await store.query(
    `SELECT hook, count(*) AS vectors, count(DISTINCT position) AS positions, count(DISTINCT component) AS components, avg(norm) AS mean_norm FROM activations WHERE run_id = '${runId}' GROUP BY hook ORDER BY min(layer) NULLS FIRST, hook`,
    { maxRows: 1000 },
  );
  const exps = await store.query(
    `SELECT experiment_id, kind, metric, clean_value, corrupted_value, created_at FROM experiments WHERE contains(CAST(params AS VARCHAR), '${runId}') ORDER BY created_at DESC`,
    { maxRows: 100 },
  );
  return [
    `# Run ${run.runId}`,
    '',
    `- model: ${run.modelId}`,
    `- created: ${run.createdAt}`,
    `- meta: \`${JSON.stringify(run.meta)}\``,
    `- prompt: ${JSON.stringify(run.prompt)}`,
    '',
    `## Tokens (${run.tokenIds.length})`,
    '',
    renderTable(['position', 'id', 'token'], run.tokenIds.map((id, i) => [i, id, JSON.stringify(run.tokens[i])]), { maxCells: 6000 }).text,
    '',
    `## Stored activations (${acts.rows.reduce((n, r) => n + Number(r[1]), 0)} vectors)`,
    '',
    acts.rows.length ? renderTable(acts.columns.map((c) => c.name), acts.rows).text : 'none',
    '',
    '## Experiments that used this run',
    '',
    exps.rows.length ? renderTable(exps.columns.map((c) => c.name), exps.rows).text : 'none',
    '',
    `Vectors: query_activations with SELECT position, component, vec FROM activations WHERE run_id = '${run.runId}' AND hook = '...'`,
  ].join('\n');
}

function registerResources(mcp: McpServer, shared: SharedState): void {
  mcp.registerResource(
    'schema',
    'neuroscope://schema',
    { title: 'Activation store schema', description: 'Tables and columns of the DuckDB activation store, with row counts and example queries', mimeType: 'text/markdown' },
    async (uri) => {
      const ws = await ready(shared);
      return { contents: [{ uri: uri.href, mimeType: 'text/markdown', text: await storeSchemaMarkdown(ws.ctx.store) }] };
    },
  );

  const findingNames = async () => findingFileNames((await ready(shared)).dataDir);
  mcp.registerResource(
    'finding',
    new ResourceTemplate('neuroscope://findings/{name}', {
      list: async () => ({
        resources: (await findingNames()).map((name) => ({ uri: findingUri(name), name, title: `Finding: ${name}`, description: `Finding ${name}`, mimeType: 'text/markdown' })),
      }),
      complete: { name: async (value) => (await findingNames()).filter((n) => n.startsWith(value)).slice(0, 100) },
    }),
    { title: 'Findings', description: 'Markdown findings written with write_finding (<dataDir>/findings/<name>.md)', mimeType: 'text/markdown' },
    async (uri, vars) => {
      const ws = await ready(shared);
      const name = decodeURIComponent(String(vars.name));
      try {
        return { contents: [{ uri: uri.href, mimeType: 'text/markdown', text: await readFinding(ws.dataDir, name) }] };
      } catch (e) {
        throw new McpError(ErrorCode.InvalidParams, errorMessage(e));
      }
    },
  );

  const recentRuns = async (limit: number) => {
    const ws = await ready(shared);
    const r = await ws.ctx.store.query(`SELECT run_id, prompt FROM runs ORDER BY created_at DESC, run_id LIMIT ${limit}`, { maxRows: limit });
    return r.rows.map((row) => ({ runId: String(row[0]), prompt: String(row[1]) }));
  };
  mcp.registerResource(
    'run',
    new ResourceTemplate('neuroscope://runs/{runId}', {
      list: async () => ({
        resources: (await recentRuns(100)).map((r) => ({
          uri: `neuroscope://runs/${r.runId}`, name: r.runId, title: `Run ${r.runId}`, description: r.prompt.length > 120 ? `${r.prompt.slice(0, 120)}…` : r.prompt, mimeType: 'text/markdown',
        })),
      }),
      complete: { runId: async (value) => (await recentRuns(1000)).map((r) => r.runId).filter((id) => id.startsWith(value)).slice(0, 100) },
    }),
    { title: 'Runs', description: 'One forward pass: prompt, tokens, stored activations and the experiments that used it (newest 100 listed)', mimeType: 'text/markdown' },
    async (uri, vars) => {
      const ws = await ready(shared);
      return { contents: [{ uri: uri.href, mimeType: 'text/markdown', text: await runMarkdown(ws, decodeURIComponent(String(vars.runId))) }] };
    },
  );
}

function registerPrompts(mcp: McpServer, shared: SharedState): void {
  for (const p of shared.prompts) {
    const shape: Record<string, z.ZodType<string | undefined>> = {};
    for (const a of p.arguments) {
      const d = a.default ? `${a.description} (default: ${a.default})` : a.description;
      shape[a.name] = a.required ? z.string().describe(d) : z.string().optional().describe(d);
    }
    mcp.registerPrompt(p.name, { title: p.title, description: p.description, argsSchema: shape }, (args: Record<string, string | undefined>) => {
      let text: string;
      try {
        text = renderPrompt(p, args);
      } catch (e) {
        throw new McpError(ErrorCode.InvalidParams, errorMessage(e));
      }
      return { description: p.description, messages: [{ role: 'user' as const, content: { type: 'text' as const, text } }] };
    });
  }
}
