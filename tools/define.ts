// How every research tool is declared: a name, a description an LLM can act on, a zod input
// schema, a zod OUTPUT schema (the typed result every client reads), and a run function that
// reports progress and honours cancellation. The CLI, the MCP server, the agent and the tests all
// call tools through `callTool`, so validation of arguments and of results is one thing.
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

/** An object schema: MCP's outputSchema must describe a JSON object. */
export type OutputSchema = z.ZodObject;

export interface Tool<I extends z.ZodType = z.ZodType, O extends OutputSchema = OutputSchema> {
  name: string;
  description: string;
  input: I;
  /** The result's shape: numbers at full precision, grids with labelled axes (tools/output.ts). */
  output: O;
  run: (input: z.output<I>, ctx: ToolContext) => Promise<z.input<O>>;
  /** The tool only reads the store (never the model, never writes): it needs no write unit, and
   *  the MCP server runs it beside the queued calls, so a long SQL query holds up no one. */
  storeReadOnly?: boolean;
}

export function defineTool<I extends z.ZodType, O extends OutputSchema>(tool: Tool<I, O>): Tool<I, O> {
  return tool;
}

/** Readable zod errors: which argument, what was wrong. */
export function formatZodError(tool: string, err: z.ZodError): string {
  const lines = err.issues.map((i) => `  ${i.path.length ? i.path.join('.') : '(input)'}: ${i.message}`);
  return `invalid arguments for ${tool}:\n${lines.join('\n')}`;
}

/**
 * Validates the arguments, runs the tool, and validates its result against the output schema (a
 * result that does not match is a bug in the tool, reported as such, never passed on). Returns the
 * parsed result, so what every client gets is exactly what the schema says.
 */
export async function callTool<I extends z.ZodType, O extends OutputSchema>(tool: Tool<I, O>, args: unknown, ctx: ToolContext): Promise<z.output<O>> {
  const parsed = tool.input.safeParse(args);
  if (!parsed.success) throw new ToolError(formatZodError(tool.name, parsed.error));
  if (ctx.signal?.aborted) throw new ToolError(`${tool.name} cancelled before it started`);
  // One call, one unit: its runs, activations, experiments and results commit together or not at all.
  const result = await (tool.storeReadOnly ? tool.run(parsed.data, ctx) : ctx.store.atomic(() => tool.run(parsed.data, ctx)));
  const checked = tool.output.safeParse(result);
  if (!checked.success) {
    const lines = checked.error.issues.slice(0, 8).map((i) => `  ${i.path.join('.') || '(result)'}: ${i.message}`);
    throw new Error(`internal error: ${tool.name} returned a result that does not match its output schema:\n${lines.join('\n')}`);
  }
  return checked.data;
}

/** Throws a clear error when the signal fired (between units of work). */
export function checkCancelled(ctx: ToolContext, what: string): void {
  if (ctx.signal?.aborted) throw new ToolError(`${what} cancelled`);
}
