// How every research tool is declared: a name, a description an LLM can act on, a zod input
// schema, a zod OUTPUT schema (the typed result every client reads), and a run function that
// reports progress and honours cancellation. The CLI, the MCP server, the agent and the tests all
// call tools through `callTool`, so validation of arguments and of results is one thing.
import { z } from 'zod';
import { ToolError } from './errors.ts';
import { checkToolLimits, type ToolLimits } from './limits.ts';
import { closestName } from './names.ts';
import type { ModelSession } from './session.ts';
import type { ActivationStore } from './store/index.ts';

export { ToolError };

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
  /**
   * Whether the tool reads prompt or answer text. Such tools refuse words outside the model's
   * vocabulary unless called with `allowUnknown: true`, and then return `warnings` (callTool adds
   * both to the schemas, so each tool declares neither).
   */
  readsText?: boolean;
  input: I;
  /** Sizes this tool takes at most (prompts, sweep, site lists), checked on the parsed arguments. */
  limits?: ToolLimits;
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

/** The keys an object schema at `path` of `schema` takes (through optional, default, array, union and pipe). */
export function objectKeysAt(schema: z.ZodType, path: readonly PropertyKey[]): string[] {
  const def = (schema as unknown as { def: Record<string, any> }).def;
  switch (def.type) {
    case 'optional': case 'nullable': case 'default': case 'prefault': case 'readonly': case 'catch': case 'nonoptional':
      return objectKeysAt(def.innerType, path);
    case 'pipe':
      return objectKeysAt(def.in, path);
    case 'union':
      return [...new Set((def.options as z.ZodType[]).flatMap((o) => objectKeysAt(o, path)))];
    case 'array':
      return path.length && typeof path[0] === 'number' ? objectKeysAt(def.element, path.slice(1)) : [];
    case 'record':
      return path.length ? objectKeysAt(def.valueType, path.slice(1)) : [];
    case 'object': {
      const shape = def.shape as Record<string, z.ZodType>;
      if (!path.length) return Object.keys(shape);
      const next = shape[String(path[0])];
      return next ? objectKeysAt(next, path.slice(1)) : [];
    }
    default:
      return [];
  }
}

/** Readable zod errors: which argument, what was wrong, and for unknown argument names the nearest valid one. */
export function formatZodError(tool: string, err: z.ZodError, schema?: z.ZodType): string {
  // A union of objects reads best as the complaint of the option the caller came closest to: the
  // one with the fewest unknown argument names.
  const unknownKeys = (b: z.core.$ZodIssue[]) => b.reduce((n, x) => n + (x.code === 'unrecognized_keys' ? x.keys.length : 0), 0);
  const issues = err.issues.flatMap((i): z.core.$ZodIssue[] => {
    if (i.code !== 'invalid_union') return [i];
    const branches = i.errors.filter((b) => b.some((x) => x.code === 'unrecognized_keys')).sort((a, b) => unknownKeys(a) - unknownKeys(b));
    return branches.length ? branches[0].map((x) => ({ ...x, path: [...i.path, ...x.path] })) : [i];
  });
  const lines = issues.map((i) => {
    const where = i.path.length ? i.path.join('.') : '(input)';
    if (i.code === 'unrecognized_keys' && schema) {
      const valid = objectKeysAt(schema, i.path);
      const what = i.keys.map((k) => {
        const near = closestName(k, valid);
        return `"${k}"${near ? ` (did you mean "${near}"?)` : ''}`;
      });
      return `  ${where}: unknown argument${i.keys.length > 1 ? 's' : ''} ${what.join(', ')}; valid: ${valid.join(', ')}`;
    }
    return `  ${where}: ${i.message}`;
  });
  return `invalid arguments for ${tool}:\n${lines.join('\n')}`;
}

const AllowUnknown = z.boolean().default(false)
  .describe('accept words outside the vocabulary (they become the unknown token; listed in warnings)');
const Warnings = z.array(z.string()).optional().describe('words outside the vocabulary that were accepted with allowUnknown (the numbers may mean little)');

const inputs = new WeakMap<Tool, z.ZodType>();
const outputs = new WeakMap<Tool, OutputSchema>();

/** The arguments a tool takes as called: its input, plus allowUnknown for tools that read text. */
export function toolInput(tool: Tool): z.ZodType {
  let s = inputs.get(tool);
  if (!s) {
    const object = tool.input instanceof z.ZodObject ? tool.input : null;
    if (tool.readsText && !object) throw new Error(`${tool.name}: a tool that reads text needs an object input schema`);
    // extend() makes a new schema: carry the input's metadata (examples) over.
    s = tool.readsText ? object!.extend({ allowUnknown: AllowUnknown }).meta(z.globalRegistry.get(object!) ?? {}) : tool.input;
    inputs.set(tool, s);
  }
  return s;
}

/** The result a tool returns as called: its output, plus warnings for tools that read text. */
export function toolOutput(tool: Tool): OutputSchema {
  let s = outputs.get(tool);
  if (!s) outputs.set(tool, (s = tool.readsText ? tool.output.extend({ warnings: Warnings }) : tool.output));
  return s;
}

/**
 * Validates the arguments, runs the tool, and validates its result against the output schema (a
 * result that does not match is a bug in the tool, reported as such, never passed on). Returns the
 * parsed result, so what every client gets is exactly what the schema says.
 */
export async function callTool<I extends z.ZodType, O extends OutputSchema>(tool: Tool<I, O>, args: unknown, ctx: ToolContext): Promise<z.output<O> & { warnings?: string[] }> {
  const input = toolInput(tool as unknown as Tool);
  const parsed = input.safeParse(args);
  if (!parsed.success) throw new ToolError(formatZodError(tool.name, parsed.error, input));
  if (ctx.signal?.aborted) throw new ToolError(`${tool.name} cancelled before it started`);
  const { allowUnknown, ...toolArgs } = parsed.data as { allowUnknown?: boolean };
  // Only tools that read text get a per-call vocabulary view (store tools may run without a model).
  const view = tool.readsText ? ctx.session.forCall(allowUnknown === true) : { session: ctx.session, warnings: [] as string[] };
  const callCtx: ToolContext = { ...ctx, session: view.session };
  const runArgs = (tool.readsText ? toolArgs : parsed.data) as z.output<I>;
  if (tool.limits) {
    const session = ctx.session;
    checkToolLimits(tool.name, tool.limits, runArgs, { numLayers: session.config.numLayers, countTokens: (t) => session.tokenizer.encode(t).length });
  }
  // One call, one unit: its runs, activations, experiments and results commit together or not at all.
  const result = await (tool.storeReadOnly ? tool.run(runArgs, callCtx) : ctx.store.atomic(() => tool.run(runArgs, callCtx)));
  const withWarnings = view.warnings.length ? { ...(result as object), warnings: view.warnings } : result;
  const checked = toolOutput(tool as unknown as Tool).safeParse(withWarnings);
  if (!checked.success) {
    const lines = checked.error.issues.slice(0, 8).map((i) => `  ${i.path.join('.') || '(result)'}: ${i.message}`);
    throw new Error(`internal error: ${tool.name} returned a result that does not match its output schema:\n${lines.join('\n')}`);
  }
  return checked.data as z.output<O> & { warnings?: string[] };
}

/** Throws a clear error when the signal fired (between units of work). */
export function checkCancelled(ctx: ToolContext, what: string): void {
  if (ctx.signal?.aborted) throw new ToolError(`${what} cancelled`);
}
