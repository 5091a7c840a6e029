// Every research tool, by name: the one list the CLI, the MCP server and the agent bind to.
import { ablateTool } from './ablate.ts';
import { captureTool } from './capture.ts';
import type { Tool } from './define.ts';
import { pathPatchTool } from './path-patch.ts';
import { patchTool } from './patch.ts';
import { steerTool } from './steer.ts';

export const TOOLS: readonly Tool[] = [captureTool, patchTool, pathPatchTool, ablateTool, steerTool] as unknown as Tool[];

export { ablateTool, captureTool, pathPatchTool, patchTool, steerTool };
export { callTool, ToolError, type Tool, type ToolContext, type ToolProgress } from './define.ts';
export { ModelSession } from './session.ts';
