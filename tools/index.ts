// Every research tool, by name: the one list the CLI, the MCP server and the agent bind to.
import { ablateTool } from './ablate.ts';
import { dlaTool } from './attribution.ts';
import { attentionTool } from './attention.ts';
import { captureTool } from './capture.ts';
import { circuitTool } from './circuit.ts';
import type { Tool } from './define.ts';
import { listFindingsTool, writeFindingTool } from './findings.ts';
import { logitLensTool } from './logit-lens.ts';
import { generateTool, listHooksTool, loadModelTool, modelInfoTool, tokenizeTool } from './model-tools.ts';
import { pathPatchTool } from './path-patch.ts';
import { pcaTool } from './pca.ts';
import { probeTool } from './probe.ts';
import { patchTool } from './patch.ts';
import { routingTool } from './routing.ts';
import { selectivityTool } from './selectivity.ts';
import { similarityTool } from './similarity.ts';
import { attachSaeTool } from './sae/attach-sae.ts';
import { featureDashboardTool, featureInterventionTool, featureSearchTool } from './sae/features.ts';
import { trainSaeTool } from './sae/train-sae.ts';
import { steerTool } from './steer.ts';
import { describeStoreTool, queryActivationsTool } from './store-tools.ts';

export const TOOLS: readonly Tool[] = [
  modelInfoTool, loadModelTool, listHooksTool, tokenizeTool, generateTool,
  captureTool, patchTool, pathPatchTool, ablateTool, steerTool,
  probeTool, pcaTool, logitLensTool, dlaTool,
  attentionTool, routingTool, similarityTool, selectivityTool, circuitTool,
  trainSaeTool, attachSaeTool, featureDashboardTool, featureSearchTool, featureInterventionTool,
  queryActivationsTool, describeStoreTool, writeFindingTool, listFindingsTool,
] as unknown as Tool[];

export { ablateTool, captureTool, pathPatchTool, patchTool, steerTool };
export { attentionTool, circuitTool, routingTool, selectivityTool, similarityTool };
export { dlaTool, logitLensTool, pcaTool, probeTool };
export { generateTool, listHooksTool, loadModelTool, modelInfoTool, tokenizeTool };
export { describeStoreTool, queryActivationsTool, listFindingsTool, writeFindingTool };
export { attachSaeTool, featureDashboardTool, featureInterventionTool, featureSearchTool, trainSaeTool };
export { callTool, ToolError, type Tool, type ToolContext, type ToolProgress } from './define.ts';
export { ModelSession } from './session.ts';
