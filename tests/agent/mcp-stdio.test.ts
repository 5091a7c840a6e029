// The agent's MCP client over stdio: `neuroscope mcp` as a child process, tools loaded through
// @langchain/mcp-adapters, results and the server's own argument errors as any client sees them.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { McpToolbox } from '../../agent/mcp.ts';
import { writeRandomWordModel } from '../helpers/random-model.ts';

const root = mkdtempSync(join(tmpdir(), 'ns-agent-stdio-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

it('talks to `neuroscope mcp` over stdio', async () => {
  writeRandomWordModel(join(root, 'model'));
  const toolbox = await McpToolbox.connect({ kind: 'stdio', model: join(root, 'model'), dataDir: join(root, 'data') });
  try {
    expect(toolbox.names()).toEqual(expect.arrayContaining(['model_info', 'patch_activations', 'path_patch', 'ablate', 'steer', 'query_activations', 'write_finding']));
    const spec = toolbox.specs().find((t) => t.name === 'patch_activations')!;
    expect(spec.parameters).toMatchObject({ type: 'object' });
    const info = await toolbox.call('model_info', {});
    expect(info.ok).toBe(true);
    expect((info.structured as { architecture: { layers: number } }).architecture.layers).toBe(3);
    const progress: number[] = [];
    const patch = await toolbox.call('patch_activations', { clean: ['w1 w2 w3'], corrupted: ['w1 w5 w3'], target: 'w7', distractor: 'w8', site: 'head' }, { onProgress: (p) => progress.push(p.progress) });
    expect(patch.ok).toBe(true);
    expect(patch.experimentIds).toHaveLength(1);
    expect(patch.runIds.length).toBe(2);
    expect(progress.length).toBeGreaterThan(0);
    const bad = await toolbox.call('tokenize', { txt: 'w1' });
    expect(bad.ok).toBe(false);
    expect(bad.text).toMatch(/invalid arguments for tokenize/);
  } finally {
    await toolbox.close();
  }
});
