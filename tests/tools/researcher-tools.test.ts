// The research tools as a researcher working through MCP alone uses them, on the planted tiny-s
// model: attention_patterns with heads as a list of addresses, `top` bounding what is listed, heads
// that give their attention to the sink reported as inactive (no look-alike role scores) and sink
// never a candidate; path_patch through any subset of q/k/v with a hint to narrow large sweeps; long
// run-id lists as a count plus the SQL that returns them; neuron_selectivity saying when domains
// share tokens.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildTinyModel } from '../../engine/tiny/index.ts';
import { callTool, type ToolContext } from '../../tools/define.ts';
import { attentionTool } from '../../tools/attention.ts';
import { pathPatchTool } from '../../tools/path-patch.ts';
import { byLength, ioiPatchingSet } from '../../tools/prompt-sets.ts';
import { selectivityTool } from '../../tools/selectivity.ts';
import { describeStoreTool, queryActivationsTool } from '../../tools/store-tools.ts';
import { captureTool } from '../../tools/capture.ts';
import { renderResult } from '../../mcp-server/render.ts';
import { loadSuitePrompts } from '../../tools/suite/prompts.ts';
import { openWorkspace } from '../../tools/workspace.ts';

const root = mkdtempSync(join(tmpdir(), 'ns-attn-roles-'));
let ctx: ToolContext;
let close: () => Promise<void>;
let prompts: string[];
let suite: ReturnType<typeof loadSuitePrompts>;

beforeAll(async () => {
  // The model the chat opens by default (realistic style).
  buildTinyModel('tiny-s', 0, join(root, 'model'));
  ({ ctx, close } = await openWorkspace(join(root, 'model'), join(root, 'data'), { threads: 1 }));
  const p = (suite = loadSuitePrompts(join(root, 'model')));
  // The chat's /attn default: 6 IOI prompts and 6 induction prompts.
  prompts = [...p.ioi.slice(0, 6).map((e) => e.prompt), ...p.induction.slice(0, 6).map((e) => e.prompt)];
}, 120_000);
afterAll(async () => {
  await close();
  rmSync(root, { recursive: true, force: true });
});

it('scores exactly the listed heads, in the order given', async () => {
  const r = await callTool(attentionTool, { prompts, heads: ['L1.H5', 'L0.H5'], maxPatternHeads: 0 }, ctx);
  expect(r.heads).toBe(2);
  expect(r.scores.map((s) => s.head)).toEqual(['L1.H5', 'L0.H5']);
  // The planted induction head and previous-token head.
  expect(r.scores[0].scores.induction).toBeCloseTo(0.8524, 3);
  expect(r.scores[1].scores.previous_token).toBeCloseTo(0.9274, 3);
  // Baselines are means over the selected heads: previous_token 0.927 - 0.464 edges out induction 0.852 - 0.426.
  expect(r.candidates.map((c) => [c.head, c.roles[0].role])).toEqual([['L0.H5', 'previous_token'], ['L1.H5', 'induction']]);
  await expect(callTool(attentionTool, { prompts, heads: ['L1.H5'], layers: [1] }, ctx)).rejects.toThrow(/give heads as addresses .* or layers with head indices, not both/);
  await expect(callTool(attentionTool, { prompts, heads: ['L1.E0'] }, ctx)).rejects.toThrow(/"L1.E0" is a expert, not a head; write L<layer>.H<head>/);
  await expect(callTool(attentionTool, { prompts, heads: ['L1.H5', 'L1.H5'] }, ctx)).rejects.toThrow(/more than once/);
}, 120_000);

it('honours top; inactive heads get no role scores; sink is never a candidate', async () => {
  const r = await callTool(attentionTool, { prompts, maxPatternHeads: 0, top: 3 }, ctx);
  expect(r.heads).toBe(32);
  expect(r.candidates.length).toBeLessThanOrEqual(3);
  expect(r.candidates[0]).toMatchObject({ head: 'L1.H5', roles: [{ role: 'induction' }] });
  for (const c of r.candidates) expect(c.roles.map((x) => x.role)).not.toContain('sink');
  for (const role of r.roles) expect(role.top.length).toBeLessThanOrEqual(3);
  // Scores only for the heads named in roles and candidates, and the SQL for the rest.
  const named = new Set([...r.roles.flatMap((x) => x.top.map((t) => t.head)), ...r.candidates.map((c) => c.head)]);
  expect(new Set(r.scores.map((s) => s.head))).toEqual(named);
  expect(r.scoresOmitted).toMatch(new RegExp(`^${r.scores.length} of 32 heads listed .*FROM results WHERE experiment_id = '${r.experimentId}'`));
  // L1.H3 gives 97% of its attention to the sink: inactive, with only its sink score.
  expect(r.inactive).toContain('L1.H3');
  const all = await ctx.store.query(`SELECT site, extra->>'role' AS role, value FROM results WHERE experiment_id = '${r.experimentId}' AND site = 'L1.H3' ORDER BY role`);
  expect(Object.fromEntries(all.rows.map((x) => [x[1], x[2] === null ? null : Number(Number(x[2]).toFixed(4))]))).toEqual({
    attends_to_first: null, duplicate_token: null, induction: null, previous_token: null, sink: 0.969,
  });
}, 120_000);

it('lists a long run-id list as a count and the SQL that returns exactly those runs', async () => {
  const r = await callTool(attentionTool, { prompts, heads: ['L1.H5'], maxPatternHeads: 0 }, ctx);
  expect(r.runIds).toHaveLength(12);
  const text = renderResult(r as unknown as Record<string, unknown>);
  const line = text.split('\n').find((l) => l.startsWith('runIds:'))!;
  expect(line).toMatch(new RegExp(`^runIds: 12 runs \\(${r.runIds[0]}, ${r.runIds[1]}, … ${r.runIds[11]}\\); each with its prompt: query_activations `));
  expect(line.match(/\brun_[a-z0-9]{6,}\b/g)).toHaveLength(3);
  const sql = JSON.parse(line.slice(line.indexOf('{'))).sql as string;
  const q = await callTool(queryActivationsTool, { sql }, ctx);
  expect(q.rows.map((x) => x[0])).toEqual(r.runIds);
  expect(q.rows.map((x) => x[1])).toEqual(prompts);
}, 120_000);

it('path patches through any subset of q/k/v, and hints to name senders when every head is one', async () => {
  const set = ioiPatchingSet(byLength(suite.ioi)[0].slice(0, 4), 'io_swap');
  const base = { clean: set.clean, corrupted: set.corrupted, target: set.target, distractor: set.distractor, receivers: ['L3.H1'] };
  const q = await callTool(pathPatchTool, { ...base, senders: ['L1.H5', 'L2.H2'], receiverInput: 'q' }, ctx);
  const qList = await callTool(pathPatchTool, { ...base, senders: ['L1.H5', 'L2.H2'], receiverInput: ['q'] }, ctx);
  expect(qList.receivers).toBe('L3.H1:q');
  expect(qList.top).toEqual(q.top);
  expect(q.hint).toBeUndefined();
  const kv = await callTool(pathPatchTool, { ...base, senders: ['L1.H5', 'L2.H2'], receiverInput: ['v', 'k'] }, ctx);
  expect(kv.receivers).toBe('L3.H1:kv');
  expect(kv.senders).toBe(2);
  expect(kv.top.map((x) => x.effect)).not.toEqual(q.top.map((x) => x.effect));
  await expect(callTool(pathPatchTool, { ...base, receiverInput: ['k', 'k'] }, ctx)).rejects.toThrow(/more than once/);
  await expect(callTool(pathPatchTool, { ...base, receiverInput: ['x'] }, ctx)).rejects.toThrow(/receiverInput/);
  const all = await callTool(pathPatchTool, { ...base, receiverInput: 'q' }, ctx);
  expect(all.senders).toBe(24);
  expect(all.hint).toMatch(/^all 24 heads before layer 3 were senders .*name the senders to narrow the sweep/);
}, 300_000);

it('says when domains share tokens, and can leave them out or refuse', async () => {
  const domains = { math: ['3 + 4 = 7', '5 + 1 = 6'], code: ['x = 3', 'y = x + 1'] };
  const warn = await callTool(selectivityTool, { domains, layers: [0] }, ctx);
  expect(warn.shared.tokens.map((t) => t.token).sort()).toEqual(['+', '1', '3', '=']);
  expect(warn.shared.count).toBe(4);
  // math: 3 + 4 = 7 5 + 1 = 6 -> 3, +, =, +, 1, = shared (6 of 10); code: x = 3 y = x + 1 -> =, 3, =, +, 1 (5 of 8).
  expect(warn.shared.share.math).toBeCloseTo(6 / 10, 10);
  expect(warn.shared.share.code).toBeCloseTo(5 / 8, 10);
  expect(warn.warning).toMatch(/^4 token\(s\) occur in more than one domain .*math 60%, code 63% of tokens/);
  const ex = await callTool(selectivityTool, { domains, layers: [0], sharedTokens: 'exclude' }, ctx);
  expect(ex.warning).toBeUndefined();
  expect(ex.shared.excluded).toBe(true);
  expect(ex.domains.map((d) => d.tokens)).toEqual([4, 3]);
  await expect(callTool(selectivityTool, { domains, layers: [0], sharedTokens: 'refuse' }, ctx)).rejects.toThrow(/the domains share 4 token\(s\): .*"\+" \(math, code\)/);
}, 120_000);

it('documents what SQL readers trip over: vec is 1-based, per-expert hooks keep routed tokens only', async () => {
  const d = await callTool(describeStoreTool, {}, ctx);
  const text = JSON.stringify(d);
  expect(text).toContain('dimension 92 is vec[93]');
  expect(text).toContain('store only the tokens routed to the expert');
  const cap = await callTool(captureTool, { prompts: ['When Mary and John went'], hooks: ['blocks.0.mlp.hook_post', 'blocks.0.hook_resid_post'] }, ctx);
  const run = cap.runIds[0];
  // Every position has exactly top-k expert rows: the unrouted experts have none.
  const perPos = await ctx.store.query(`SELECT position, count(*) FROM activations WHERE run_id = '${run}' AND hook = 'blocks.0.mlp.hook_post' GROUP BY position ORDER BY position`);
  expect(perPos.rows.map((r) => Number(r[1]))).toEqual(perPos.rows.map(() => ctx.session.config.expertsPerToken));
  // SQL's vec[d + 1] is element d of the vector.
  const v = await ctx.store.query(`SELECT vec, vec[1] AS first, vec[93] AS d92 FROM activations WHERE run_id = '${run}' AND hook = 'blocks.0.hook_resid_post' AND position = 0`);
  const [vec, first, d92] = v.rows[0] as [number[], number, number];
  expect(first).toBe(vec[0]);
  expect(d92).toBe(vec[92]);
}, 120_000);
