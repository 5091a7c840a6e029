// The MCP server over stdio with the SDK's real client: tools, a patching sweep read back with SQL,
// findings and their resources, prompts, progress, cancellation, and the safety refusals.
import { mkdtempSync, rmSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TOOLS } from '../../tools/index.ts';
import { data, isError, makeModel, pair, stdioClient, text, validCalls, type StdioHandle } from './helpers.ts';

const root = mkdtempSync(join(tmpdir(), 'ns-mcp-stdio-'));
const dataDir = join(root, 'data');
let h: StdioHandle;
let modelDir: string;

beforeAll(async () => {
  h = await stdioClient((modelDir = makeModel(root)), dataDir);
});
afterAll(async () => {
  await h?.close();
  rmSync(root, { recursive: true, force: true });
});

const call = (name: string, args: Record<string, unknown> = {}) => h.client.callTool({ name, arguments: args });

/** The single value of a one-row, one-column query. */
async function scalar(sql: string): Promise<unknown> {
  const r = await call('query_activations', { sql });
  expect(isError(r), text(r)).toBe(false);
  return data(r).rows[0][0];
}

describe('tools over stdio', () => {
  it('lists every tool in TOOLS with its description, input and output JSON Schemas, and nothing else', async () => {
    const { tools } = await h.client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual(TOOLS.map((t) => t.name).sort());
    for (const t of tools) {
      expect(t.description!.length).toBeGreaterThan(40);
      expect(t.inputSchema.type).toBe('object');
      expect(t.outputSchema?.type, t.name).toBe('object');
      expect(Object.keys(t.outputSchema!.properties ?? {}).length, t.name).toBeGreaterThan(0);
    }
    const patch = tools.find((t) => t.name === 'patch_activations')!;
    expect((patch.outputSchema!.properties as Record<string, { properties?: Record<string, unknown> }>).grid.properties).toHaveProperty('rows');
    const gen = tools.find((t) => t.name === 'generate')!;
    expect(gen.inputSchema.properties).toHaveProperty('maxNewTokens');
    expect((gen.inputSchema as { examples?: unknown[] }).examples?.length).toBeGreaterThan(0);
    expect(gen.inputSchema.required).toEqual(['prompt']);
  });

  it('every tool answers a valid call with structuredContent valid against its outputSchema, and one text rendering', async () => {
    const calls = validCalls(modelDir);
    expect(calls.map(([n]) => n).sort()).toEqual(TOOLS.map((t) => t.name).sort());
    for (const [name, args] of calls) {
      // The SDK client validates structuredContent against the advertised outputSchema (and throws when it does not match).
      const r = await call(name, args);
      expect(isError(r), `${name}: ${text(r).slice(0, 400)}`).toBe(false);
      expect(Object.keys(data(r)).length, name).toBeGreaterThan(0);
      expect((r.content as unknown[]).length, name).toBe(1);
      expect(text(r).length, name).toBeGreaterThan(2);
    }
  });

  it('model_info and tokenize', async () => {
    const info = data(await call('model_info'));
    expect(info.modelId).toBe('model');
    expect((info.architecture as { layers: number }).layers).toBe(3);
    const tok = await call('tokenize', { text: 'w1 w2  w3' });
    expect(isError(tok)).toBe(false);
    expect(data(tok).tokens[2]).toEqual({ position: 2, id: 4, text: 'w3', start: 7, end: 9 });
    expect(text(tok)).toContain('| 2 | 4 | w3 | 7 | 9 |');
    const dec = await call('tokenize', { ids: [2, 3] });
    expect(data(dec).text).toBe('w1 w2');
    const far = await call('tokenize', { ids: [2, 1_000_000] });
    expect(isError(far)).toBe(true);
    expect(text(far)).toMatch(/token id 1000000 is out of range: the model's vocabulary has \d+ ids/);
  });

  it('capture_activations stores rows that query_activations reads back', async () => {
    const cap = data(await call('capture_activations', { prompts: ['w1 w2 w3 w4'], hooks: ['blocks.*.hook_resid_post'] }));
    expect(cap.rowsStored).toBe(12);
    const runId = (cap.runIds as string[])[0];
    const q = await call('query_activations', { sql: `SELECT layer, count(*) AS n FROM activations WHERE run_id = '${runId}' GROUP BY layer ORDER BY layer` });
    expect(isError(q)).toBe(false);
    expect(data(q).rows).toEqual([[0, 4], [1, 4], [2, 4]]);
    expect(text(q)).toContain('rows (3 rows):\n| layer | n |');
    const run = await h.client.readResource({ uri: `neuroscope://runs/${runId}` });
    const body = (run.contents[0] as { text: string }).text;
    expect(body).toContain(`# Run ${runId}`);
    expect(body).toContain('blocks.2.hook_resid_post');
  });

  it('a patching sweep through MCP: a labelled grid at full precision, the same grid as a table, every site stored, with progress notifications', async () => {
    const { clean, corrupted } = pair(7, 5);
    const progress: { progress: number; total?: number }[] = [];
    const r = await h.client.callTool(
      { name: 'patch_activations', arguments: { clean: [clean], corrupted: [corrupted], target: 'w2', distractor: 'w3', site: 'resid_pre', maxBatch: 2 } },
      undefined,
      { onprogress: (p) => progress.push(p) },
    );
    expect(isError(r)).toBe(false);
    const t = text(r);
    const g = data(r).grid;
    expect(g.rows).toEqual({ name: 'layer', labels: ['L0', 'L1', 'L2'] });
    expect(g.cols.name).toBe('position');
    expect(g.cols.labels).toHaveLength(7);
    // Position 5 is where the prompts differ: restoring it there restores everything (float32 noise aside).
    g.values[0].forEach((v: number, p: number) => expect(v).toBeCloseTo(p === 5 ? 1 : 0, 5));
    expect(t).toContain('grid (layer x position, 3 x 7):');
    expect(t).toContain('| layer \\\\ position | P0 | P1 | P2 | P3 | P4 | P5 | P6 |');
    expect(t).toMatch(/\n\| L0 \|( \S+ \|){5} 1 \|/);
    // The top list holds only sites with an effect (float32 noise of 1e-7 is none).
    expect(data(r).top.map((x: { site: string }) => x.site).sort()).toEqual(['L0 P5', 'L1 P5', 'L1 P6', 'L2 P5', 'L2 P6']);
    const id = data(r).experimentId as string;
    const q = data(await call('query_activations', { sql: `SELECT count(*) AS sites, max(effect) AS best FROM results WHERE experiment_id = '${id}'` }));
    expect(q.rows[0][0]).toBe(21);
    // Full precision: the stored best effect equals the structured one, not a rounding of it.
    expect(q.rows[0][1]).toBe(Math.max(...g.values.flat()));
    expect(progress.length).toBeGreaterThanOrEqual(3);
    for (let i = 1; i < progress.length; i++) expect(progress[i].progress).toBeGreaterThan(progress[i - 1].progress);
    expect(progress.at(-1)!.total).toBeGreaterThan(0);
  });

  it('cancelling a sweep stops it on the server, which keeps serving', async () => {
    const { clean, corrupted } = pair(60, 30);
    const countSql = "SELECT count(*) AS n FROM experiments WHERE kind = 'activation_patching'";
    const before = await scalar(countSql);
    const ac = new AbortController();
    let notes = 0;
    const sweep = h.client.callTool(
      { name: 'patch_activations', arguments: { clean: [clean], corrupted: [corrupted], target: 'w2', distractor: 'w3', site: 'head', perPosition: true, mode: 'sequential' } },
      undefined,
      { signal: ac.signal, onprogress: () => { if (++notes === 3) ac.abort('test cancels'); } },
    );
    await expect(sweep).rejects.toThrow();
    const cancelledAt = Date.now();
    // 720 sequential forwards take several seconds; the queue is free at once if the server stopped.
    const info = await call('model_info');
    expect(isError(info)).toBe(false);
    expect(Date.now() - cancelledAt).toBeLessThan(3000);
    expect(await scalar(countSql)).toBe(before);
    await expect.poll(() => h.stderr()).toContain('patch_activations cancelled');
  });

  it('refuses SQL writes with a clear tool error', async () => {
    for (const sql of ['DELETE FROM runs', 'DROP TABLE activations', "INSERT INTO findings VALUES ('x')", 'SELECT 1; DELETE FROM runs', "COPY runs TO '/tmp/x.csv'", "CREATE TABLE t AS SELECT 1"]) {
      const r = await call('query_activations', { sql });
      expect(isError(r), sql).toBe(true);
      expect(text(r), sql).toMatch(/^SQL (refused|invalid)/);
      expect(text(r), sql).toMatch(/read-only/);
    }
    const rows = data(await call('query_activations', { sql: 'SELECT count(*) AS n FROM runs' }));
    expect(rows.rowCount).toBe(1);
  });

  it('write_finding, list_findings and the finding resource', async () => {
    const exp = data(await call('query_activations', { sql: 'SELECT experiment_id FROM experiments LIMIT 1' })).rows[0][0] as string;
    const w = await call('write_finding', { name: 'resid-flow', markdown: '# Residual flow\n\nThe swapped token matters at layer 0.', experimentIds: [exp] });
    expect(isError(w)).toBe(false);
    expect(data(w).uri).toBe('neuroscope://findings/resid-flow');
    expect(existsSync(join(dataDir, 'findings', 'resid-flow.md'))).toBe(true);
    const again = await call('write_finding', { name: 'resid-flow', markdown: 'x' });
    expect(isError(again)).toBe(true);
    expect(text(again)).toContain('already exists');
    const bad = await call('write_finding', { name: 'x', markdown: 'y', experimentIds: ['exp_nope'] });
    expect(text(bad)).toContain('no experiment exp_nope');
    const list = text(await call('list_findings'));
    expect(list).toContain('resid-flow');
    expect(list).toContain(exp);
    const res = await h.client.readResource({ uri: 'neuroscope://findings/resid-flow' });
    expect((res.contents[0] as { text: string }).text).toContain('The swapped token matters');
    const listed = await h.client.listResources();
    expect(listed.resources.map((r) => r.uri)).toEqual(expect.arrayContaining(['neuroscope://schema', 'neuroscope://findings/resid-flow']));
    const schema = await h.client.readResource({ uri: 'neuroscope://schema' });
    expect((schema.contents[0] as { text: string }).text).toContain('## activations');
  });

  it('finding names cannot escape the findings folder', async () => {
    for (const name of ['../escape', '..', '/etc/passwd', 'a/b', 'a\\b', '.hidden', 'x/../../y', 'C:evil', 'name\u0000', ' ']) {
      const r = await call('write_finding', { name, markdown: 'nope' });
      expect(isError(r), name).toBe(true);
      expect(text(r), name).toMatch(/finding name .* is not allowed|invalid arguments/);
    }
    // A link planted in the folder is not followed.
    const outside = join(root, 'outside.md');
    writeFileSync(outside, 'secret');
    symlinkSync(outside, join(dataDir, 'findings', 'link.md'));
    const r = await call('write_finding', { name: 'link', markdown: 'overwrite?', overwrite: true });
    expect(isError(r)).toBe(true);
    expect(text(r)).toContain('symbolic link');
    await expect(h.client.readResource({ uri: 'neuroscope://findings/..%2Fneuroscope.duckdb' })).rejects.toThrow(/not allowed/);
    await expect(h.client.readResource({ uri: 'neuroscope://findings/link' })).rejects.toThrow(/symbolic link/);
  });

  it('refuses oversized requests naming the limit', async () => {
    const long = Array.from({ length: 4000 }, (_, i) => `w${i % 60}`).join(' ');
    const r = await call('capture_activations', { prompts: Array(10).fill(long), hooks: ['hook_embed'] });
    expect(isError(r)).toBe(true);
    expect(text(r)).toContain('maxTokensPerCall');
    const { clean, corrupted } = pair(7, 5);
    // patch_activations declares its sweep: layers x positions x clean prompts (3 x 2000 x 200).
    const sweep = await call('patch_activations', {
      clean: Array(200).fill(clean), corrupted: Array(200).fill(corrupted), target: 'w2', distractor: 'w3', site: 'resid_pre',
      positions: [...Array(2000).keys()],
    });
    expect(text(sweep)).toContain('layers x positions x batch = 3 x 2000 x 200 = 1200000');
    expect(text(sweep)).toContain('maxSweepCells');
    const gen = await call('generate', { prompt: 'w1', maxNewTokens: 1e9 });
    expect(isError(gen)).toBe(true);
    expect(text(gen)).toMatch(/maxNewTokens/);
  });

  it('generate, list_hooks and unknown tools', async () => {
    const g = data(await call('generate', { prompt: 'w1 w2', maxNewTokens: 3 }));
    expect((g.completion as string).split(' ')).toHaveLength(3);
    const harmony = await call('generate', { prompt: 'w1', harmony: true });
    expect(text(harmony)).toContain('harmony markers');
    expect(text(await call('list_hooks', { filter: 'resid' }))).toContain('blocks.L.hook_resid_post');
    const u = await call('no_such_tool');
    expect(isError(u)).toBe(true);
    expect(text(u)).toContain('unknown tool "no_such_tool"');
  });

  it('serves the five experiment prompts with their arguments', async () => {
    const { prompts } = await h.client.listPrompts();
    expect(prompts.map((p) => p.name).sort()).toEqual(['causal-tracing', 'circuit-growth', 'cross-domain-entanglement', 'feature-localisation', 'multi-token-steering']);
    const p = await h.client.getPrompt({ name: 'multi-token-steering', arguments: { concept: 'joy', positive: 'w1', negative: 'w2', prompt: 'w3 w4', target: 'w5' } });
    const body = (p.messages[0].content as { text: string }).text;
    expect(body).toContain('towards **joy** on `w3 w4`');
    expect(body).not.toMatch(/\{\{/);
    await expect(h.client.getPrompt({ name: 'causal-tracing', arguments: { behaviour: 'IOI' } })).rejects.toThrow();
  });

  it('switches models with load_model and keeps serving', async () => {
    const bad = await call('load_model', { model: join(root, 'nowhere') });
    expect(isError(bad)).toBe(true);
    expect(text(bad)).toContain('neither a built-in model');
    const same = await call('load_model', { model: join(root, 'model') });
    expect(isError(same)).toBe(false);
    expect(data(await call('model_info')).modelId).toBe('model');
  });
});
