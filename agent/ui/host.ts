// What a slash command may ask of the chat: the narrow host interface (agent/ui/slash.ts depends on
// nothing else). The chat controller implements it; tool calls go through the chat's one MCP toolbox.
import type { ToolContext } from '../../tools/define.ts';
import type { Card, CardDisplay } from './cards.ts';
import type { Grid } from './results.ts';

export type Tone = 'info' | 'error' | 'success';

export interface ToolResult {
  ok: boolean;
  /** The text for language models (or the error message). */
  text: string;
  /** The typed result (structuredContent); {} for errors. */
  data: Record<string, any>;
}

export interface ToolCallOptions extends CardDisplay {
  /** Draw these grids instead of those read from the result (e.g. relabelled with tokens). */
  grids?: (r: ToolResult) => Grid[] | undefined;
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

export interface CommandHost {
  /** The loaded model (model_info, cached until the model changes). */
  modelInfo(): Promise<ModelInfo>;
  /** The model changed (load_model): refresh the header. */
  modelChanged(): Promise<void>;
  /** A tool call shown as a card; throws StepFailed when the tool fails (the card says why). */
  tool(name: string, args: Record<string, unknown>, opts?: ToolCallOptions): Promise<ToolResult>;
  /** A tool call without a card (labels, defaults). */
  quietTool(name: string, args: Record<string, unknown>): Promise<ToolResult>;
  /** The tools the chat can call: name and description. */
  tools(): Promise<{ name: string; description: string }[]>;
  /** An MCP resource's text (e.g. neuroscope://findings/NAME). */
  readResource(uri: string): Promise<string>;
  /** A card for work that is not one tool call. */
  card(name: string, args: Record<string, unknown>): Card;
  /** Runs in-process work (the suite) on the shared model, queued with every tool call. */
  inProcess<T>(fn: (ctx: ToolContext) => Promise<T>): Promise<T>;
  note(text: string, tone?: Tone): void;
  /** Aborted by Esc / Ctrl+C while the command runs. */
  readonly signal: AbortSignal;
  /** What earlier commands found, for later defaults (e.g. /ablate after /patch). */
  memory: { lastPatchTop?: string[] };
  investigate(question: string): Promise<void>;
  exportTranscript(file?: string): Promise<string>;
  clear(): void;
  quit(): void;
}

/** Thrown by a command step to stop quietly after a failed tool card (the card shows why). */
export class StepFailed extends Error {}

/** The slash command that runs a tool, for tools that have one. */
export const TOOL_COMMANDS: Record<string, string> = {
  query_activations: '/sql', list_findings: '/findings', list_hooks: '/hooks', model_info: '/model', load_model: '/model',
  patch_activations: '/patch', ablate: '/ablate', steer: '/steer', train_probe: '/probe', logit_lens: '/lens',
  attention_patterns: '/attn', capture_activations: '/capture',
};

/**
 * Tool errors are written for any MCP client and may name other tools ("Call describe_store for
 * table and column names"). In the chat, say how each named tool is reached: its slash command, or /tool.
 */
export function toolHint(text: string, self: string, tools: string[]): string {
  const named = tools.filter((t) => t !== self && new RegExp(`\\b${t}\\b`).test(text));
  if (!named.length) return '';
  return `\n\nIn the chat: ${named.map((t) => (TOOL_COMMANDS[t] ? `${TOOL_COMMANDS[t]} runs ${t}` : `/tool ${t} {…} runs ${t}`)).join('; ')}.`;
}
