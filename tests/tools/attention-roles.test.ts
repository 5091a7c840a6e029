// attention_patterns as a researcher uses it on the planted tiny-s model: heads chosen as a list of
// addresses, `top` bounding what is listed, heads that give their attention to the sink reported as
// inactive (no look-alike role scores), and sink never a candidate role.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildTinyModel } from '../../engine/tiny/index.ts';
import { callTool, type ToolContext } from '../../tools/define.ts';
import { attentionTool } from '../../tools/attention.ts';
import { loadSuitePrompts } from '../../tools/suite/prompts.ts';
import { openWorkspace } from '../../tools/workspace.ts';

const root = mkdtempSync(join(tmpdir(), 'ns-attn-roles-'));
let ctx: ToolContext;
let close: () => Promise<void>;
let prompts: string[];

beforeAll(async () => {
  // The model the chat opens by default (realistic style).
  buildTinyModel('tiny-s', 0, join(root, 'model'));
  ({ ctx, close } = await openWorkspace(join(root, 'model'), join(root, 'data'), { threads: 1 }));
  const p = loadSuitePrompts(join(root, 'model'));
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
  await expect(callTool(attentionTool, { prompts, heads: ['L1.E0'] }, ctx)).rejects.toThrow(/"L1.E0" is not an attention head/);
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
