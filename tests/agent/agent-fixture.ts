// The setup the agent tests share: a random word-level model written to a temporary folder, a
// workspace (model + DuckDB store) on it, and NeuroScope's MCP server in-process as the agent's
// toolbox; all closed and removed after the file's tests.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { McpToolbox } from '../../agent/mcp.ts';
import { openWorkspace, type Workspace } from '../../tools/workspace.ts';
import { writeRandomWordModel } from '../helpers/random-model.ts';

export interface AgentFixture {
  root: string;
  modelDir: string;
  dataDir: string;
  /** Set in beforeAll. */
  ws: Workspace;
  toolbox: McpToolbox;
}

export function agentFixture(name: string): AgentFixture {
  const root = mkdtempSync(join(tmpdir(), `ns-agent-${name}-`));
  const fx = { root, modelDir: join(root, 'model'), dataDir: join(root, 'data') } as AgentFixture;
  beforeAll(async () => {
    writeRandomWordModel(fx.modelDir);
    fx.ws = await openWorkspace(fx.modelDir, fx.dataDir, { threads: 1 });
    fx.toolbox = await McpToolbox.connect({ kind: 'in-process', workspace: fx.ws });
  });
  afterAll(async () => {
    await fx.toolbox?.close();
    await fx.ws?.close();
    rmSync(root, { recursive: true, force: true });
  });
  return fx;
}
