// How every research tool is declared: a name, a description an LLM can act on, a zod input
// schema, and a run function that reports progress and honours cancellation. The CLI, the MCP
// server, the agent and the tests all call tools through `callTool`, so validation is one thing.
import { z } from 'zod';
import type { ModelSession } from './session.ts';
import type { ActivationStore } from './store/index.ts';

export class ToolError extends Error {}

export interface ToolProgress {
  done: number;
  total: number;
  message?: string;
}

/** A workspace's model slot: load_model swaps the shared model through it. */
export interface ModelSwitcher {
  /** Loads `model` (a built-in name such as "tiny-s", or a checkpoint directory) and makes it the
   *  workspace's model; the previous one is released. Later calls see the new session. */
  load(model: string): Promise<ModelSession>;
}

export interface ToolContext {
  session: ModelSession;
  store: ActivationStore;
  signal?: AbortSignal;
  onProgress?: (p: ToolProgress) => void;
  /** Present when the context belongs to a workspace that can switch models. */
  models?: ModelSwitcher;
}

export interface Tool<S extends z.ZodType = z.ZodType, R = unknown> {
  name: string;
  description: string;
  input: S;
  run: (input: z.infer<S>, ctx: ToolContext) => Promise<R>;
  /** The tool only reads the store (never the model, never writes): it needs no write unit, and
   *  the MCP server runs it beside the queued calls, so a long SQL query holds up no one. */
  storeReadOnly?: boolean;
}

export function defineTool<S extends z.ZodType, R>(tool: Tool<S, R>): Tool<S, R> {
  return tool;
}

/** Readable zod errors: which argument, what was wrong. */
export function formatZodError(tool: string, err: z.ZodError): string {
  const lines = err.issues.map((i) => `  ${i.path.length ? i.path.join('.') : '(input)'}: ${i.message}`);
  return `invalid arguments for ${tool}:\n${lines.join('\n')}`;
}

export async function callTool<S extends z.ZodType, R>(tool: Tool<S, R>, args: unknown, ctx: ToolContext): Promise<R> {
  const parsed = tool.input.safeParse(args);
  if (!parsed.success) throw new ToolError(formatZodError(tool.name, parsed.error));
  if (ctx.signal?.aborted) throw new ToolError(`${tool.name} cancelled before it started`);
  // One call, one unit: its runs, activations, experiments and results commit together or not at all.
  return tool.storeReadOnly ? tool.run(parsed.data, ctx) : ctx.store.atomic(() => tool.run(parsed.data, ctx));
}

/** Throws a clear error when the signal fired (between units of work). */
export function checkCancelled(ctx: ToolContext, what: string): void {
  if (ctx.signal?.aborted) throw new ToolError(`${what} cancelled`);
}
