// How a standard experiment's steps reach the tools: a port with one method, `call(step, tool, args)`,
// typed by the tool's zod input and output schemas. The suite binds it in process (callTool on the
// workspace); the agent's built-in protocols bind it to their MCP client and parse the structured
// result with the same output schema. The steps (tools/suite/steps.ts) are written once against it.
import type { z } from 'zod';
import { ablateTool } from '../ablate.ts';
import { attentionTool } from '../attention.ts';
import { attributionPatchTool } from '../attribution-patch.ts';
import { captureTool } from '../capture.ts';
import { circuitTool } from '../circuit.ts';
import { callTool, toolOutput, type Tool, type ToolContext } from '../define.ts';
import { pathPatchTool } from '../path-patch.ts';
import { patchTool } from '../patch.ts';
import { selectivityTool } from '../selectivity.ts';
import { similarityTool } from '../similarity.ts';
import { steerTool } from '../steer.ts';

/** The tools the standard experiments' steps call, by their MCP names. */
export const STEP_TOOLS = {
  patch_activations: patchTool,
  attribution_patch: attributionPatchTool,
  path_patch: pathPatchTool,
  find_circuit: circuitTool,
  attention_patterns: attentionTool,
  ablate: ablateTool,
  capture_activations: captureTool,
  steer: steerTool,
  neuron_selectivity: selectivityTool,
  similarity_search: similarityTool,
} as const;

type StepTools = typeof STEP_TOOLS;
export type StepTool = keyof StepTools;
export type StepArgs<N extends StepTool> = z.input<StepTools[N]['input']>;
export type StepResult<N extends StepTool> = z.output<StepTools[N]['output']>;

export interface ToolPort {
  /** Runs one tool as a named step of an experiment; resolves with its typed result, throws its error. */
  call<N extends StepTool>(step: string, tool: N, args: StepArgs<N>): Promise<StepResult<N>>;
}

export const isStepTool = (name: string): name is StepTool => Object.hasOwn(STEP_TOOLS, name);

/** A structured result from another face (MCP's structuredContent) as the tool's typed result, checked by its output schema. */
export function parseStepResult<N extends StepTool>(tool: N, structured: unknown): StepResult<N> {
  return toolOutput(STEP_TOOLS[tool] as unknown as Tool).parse(structured) as StepResult<N>;
}

/** The port of the suite: every call runs in this process on `ctx`; `onStep` hears each step's name first. */
export function inProcessPort(ctx: ToolContext, onStep: (step: string) => void = () => undefined): ToolPort {
  return {
    async call(step, tool, args) {
      onStep(step);
      return callTool(STEP_TOOLS[tool] as unknown as Tool, args, ctx) as never;
    },
  };
}
