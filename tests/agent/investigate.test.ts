// The hypothesis loop driven by a scripted model (the real openai client against a scripted
// OpenAI-compatible server), with the tools through NeuroScope's MCP server in-process on a random
// word-level model: the loop's steps, findings that cite real run and experiment ids (checked in the
// store), flagged ids that no tool returned, budget limits, and interruption and resume.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { investigate, type InvestigationEvent } from '../../agent/investigate/index.ts';
import { createChatModel, resolveLlmConfig } from '../../agent/llm/index.ts';
import { McpToolbox } from '../../agent/mcp.ts';
import { openWorkspace, type Workspace } from '../../tools/workspace.ts';
import { writeRandomWordModel } from '../helpers/random-model.ts';
import { startScriptedLlm, toolMessages, type RecordedRequest, type ScriptedLlm, type Step } from './scripted-llm.ts';

const root = mkdtempSync(join(tmpdir(), 'ns-agent-inv-'));
const dataDir = join(root, 'data');
let ws: Workspace;
let toolbox: McpToolbox;

beforeAll(async () => {
  writeRandomWordModel(join(root, 'model'));
  ws = await openWorkspace(join(root, 'model'), dataDir, { threads: 1 });
  toolbox = await McpToolbox.connect({ kind: 'in-process', workspace: ws });
});

afterAll(async () => {
  await toolbox?.close();
  await ws?.close();
  rmSync(root, { recursive: true, force: true });
});

const llmFor = (s: ScriptedLlm) => createChatModel({ ...resolveLlmConfig({}, { OPENAI_BASE_URL: s.url })!, retryBaseMs: 5, retryMaxMs: 50 });
const json = (v: unknown) => ({ text: JSON.stringify(v) });
const lastUser = (r: RecordedRequest) => [...r.body.messages].reverse().find((m: any) => m.role === 'user').content as string;
const expIds = (text: string) => [...new Set(text.match(/exp_[a-z0-9]+/g) ?? [])];
const runIds = (text: string) => [...new Set(text.match(/run_[a-z0-9]+/g) ?? [])];
const lastToolOf = (r: RecordedRequest) => toolMessages(r).at(-1)!.content;

const PATCH = { clean: ['w1 w2 w3 w4 w5'], corrupted: ['w1 w2 w9 w4 w5'], target: 'w7', distractor: 'w8', site: 'head' };

describe('investigate with an LLM', () => {
  it('runs the loop, records each hypothesis and a report that cite real ids', async () => {
    const script: Step[] = [
      // H1
      { text: '```json\n{"hypothesis": "Head L2.H1 alone carries the preference for w7 over w8", "prediction": "patching L2.H1 restores more than 0.5", "rationale": "late heads move answers"}\n```' },
      json({ plan: 'patch every head with w3 corrupted to w9; read the results table', controls: 'heads in layer 0', metric: 'logit_diff w7 - w8' }),
      { toolCalls: [{ name: 'patch_activations', arguments: PATCH }, { name: 'tokenize', arguments: { text: 'w1 w2 w3 w4 w5' } }] },
      (r) => {
        const exp = expIds(toolMessages(r).map((m) => m.content).join('\n'))[0];
        return { toolCalls: [{ name: 'query_activations', arguments: { sql: `SELECT site, effect FROM results WHERE experiment_id = '${exp}' ORDER BY effect DESC LIMIT 3` } }] };
      },
      (r) => ({ text: `Head patching done (${expIds(r.body.messages.map((m: any) => m.content ?? '').join(' '))[0]}); L2.H1 is not special.` }),
      (r) => {
        const exp = expIds(lastUser(r))[0];
        return json({ result: `No single head restores more than half of the logit difference (${exp}).`, effect_sizes: `top head effect < 0.5 (${exp})`, verdict: 'refuted', evidence: [exp, 'exp_notreal1'], sql: [`SELECT site, effect FROM results WHERE experiment_id = '${exp}'`] });
      },
      json({ decision: 'alternative', reason: 'no single head', next: 'test whether ablating L1.H0 matters' }),
      // H2
      json({ hypothesis: 'Zero-ablating L1.H0 changes the logit difference', prediction: 'a drop of any size', rationale: 'alternative' }),
      json({ plan: 'ablate L1.H0 on the clean prompt', controls: 'none', metric: 'logit_diff' }),
      { toolCalls: [{ name: 'ablate', arguments: { prompts: PATCH.clean, target: 'w7', distractor: 'w8', components: ['L1.H0'], method: 'zero' } }] },
      { text: 'Ablation measured.' },
      (r) => json({ result: 'Ablating L1.H0 moves the logit difference.', effect_sizes: 'see the ablation', verdict: 'supported', evidence: expIds(lastUser(r)), sql: [] }),
      json({ decision: 'conclude', reason: 'answered' }),
      (r) => {
        const all = r.body.messages.map((m: any) => m.content ?? '').join('\n');
        return { text: `The preference is not carried by one head (${expIds(all).join(', ')}).` };
      },
    ];
    const llm = await startScriptedLlm(script);
    const events: InvestigationEvent[] = [];
    try {
      const r = await investigate({ question: 'Which heads make the model prefer w7 over w8 after w1 w2 w3 w4 w5?', toolbox, dataDir, llm: llmFor(llm), budget: 10, onEvent: (e) => events.push(e) });
      expect(r.status).toBe('concluded');
      expect(r.mode).toBe('llm');
      expect(llm.remaining()).toBe(0);
      expect(r.findings).toEqual([`${r.id}-h1`, `${r.id}-h2`, `${r.id}-report`]);
      expect(r.toolCalls).toBe(4);

      // Only the experiment step offers tools; the others ask for structured replies.
      const withTools = llm.requests.map((q) => (q.body.tools ? 1 : 0));
      expect(withTools).toEqual([0, 0, 1, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 0]);

      const h1 = readFileSync(join(dataDir, 'findings', `${r.id}-h1.md`), 'utf8');
      const report = readFileSync(join(dataDir, 'findings', `${r.id}-report.md`), 'utf8');
      for (const h of ['## Hypothesis', '## Experiment design', '## Experiments', '## Result', '## Verdict: refuted', '## Reproduce']) expect(h1).toContain(h);
      expect(h1).toContain('`patch_activations`');
      expect(h1).toMatch(/```sql\nSELECT site, effect FROM results WHERE experiment_id = 'exp_/);
      expect(h1).toMatch(/\*\*Unverified references\*\*: `exp_notreal1`/);
      expect(report).toContain(`[${r.id}-h1](${r.id}-h1.md)`);
      expect(report).toContain(`[${r.id}-h2](${r.id}-h2.md)`);
      expect(report).toContain('The preference is not carried by one head');
      expect(report).toMatch(/Agent: `gpt-5` at http:\/\/127\.0\.0\.1:\d+\/v1/);

      // Every id the findings cite is real: the experiments and runs are in the store.
      const cited = { exp: expIds(h1 + report).filter((x) => x !== 'exp_notreal1'), run: runIds(h1 + report) };
      expect(cited.exp.length).toBeGreaterThanOrEqual(2);
      expect(cited.run.length).toBeGreaterThanOrEqual(2);
      for (const id of cited.exp) expect(await ws.ctx.store.getExperiment(id), id).toBeTruthy();
      for (const id of cited.run) expect(await ws.ctx.store.getRun(id), id).toBeTruthy();
      const kinds = await ws.ctx.store.query(`SELECT kind FROM experiments WHERE experiment_id IN (${cited.exp.map((x) => `'${x}'`).join(', ')}) ORDER BY kind`);
      expect(kinds.rows.map((x) => String(x[0]))).toEqual(['ablation', 'activation_patching']);
      // The findings are in the store too, with the ids they rest on.
      const stored = await ws.ctx.store.listFindings({ limit: 100 });
      const h1Row = stored.find((f) => f.path?.endsWith(`${r.id}-h1.md`));
      expect(h1Row?.experimentIds.length).toBeGreaterThan(0);
      expect(h1Row?.runIds.length).toBeGreaterThan(0);

      const types = events.map((e) => e.type);
      for (const t of ['hypothesis', 'design', 'tool-start', 'tool-end', 'analysis', 'finding', 'decision']) expect(types).toContain(t);
      expect(existsSync(join(dataDir, 'investigations', r.id, 'checkpoints.json'))).toBe(true);
      expect(JSON.parse(readFileSync(join(dataDir, 'investigations', r.id, 'investigation.json'), 'utf8')).status).toBe('concluded');
    } finally {
      await llm.close();
    }
  });

  it('stops experimenting when the tool budget is spent and concludes', async () => {
    const llm = await startScriptedLlm([
      json({ hypothesis: 'h', prediction: 'p' }),
      json({ plan: 'two calls' }),
      { toolCalls: [{ name: 'tokenize', arguments: { text: 'w1' } }, { name: 'tokenize', arguments: { text: 'w2' } }] },
      json({ result: 'one measurement', verdict: 'inconclusive', evidence: [] }),
      { text: 'Not enough budget to say.' },
    ]);
    try {
      const r = await investigate({ question: 'budget', toolbox, dataDir, llm: llmFor(llm), budget: 1 });
      expect(r.status).toBe('concluded');
      expect(r.toolCalls).toBe(1);
      expect(llm.requests).toHaveLength(5);
      expect(toolMessages(llm.requests[3]).length).toBe(0);
      const h1 = readFileSync(join(dataDir, 'findings', `${r.id}-h1.md`), 'utf8');
      expect(h1).toContain('| 2 | `tokenize` | not run |');
      const report = readFileSync(join(dataDir, 'findings', `${r.id}-report.md`), 'utf8');
      expect(report).toMatch(/H1 \(inconclusive\) -> conclude: the tool-call budget \(1\) is spent/);
    } finally {
      await llm.close();
    }
  });

  it('resumes an interrupted investigation from its checkpoint without repeating tool calls', async () => {
    const llm = await startScriptedLlm([
      json({ hypothesis: 'Patching restores the answer', prediction: 'effect > 0' }),
      json({ plan: 'patch heads' }),
      { toolCalls: [{ name: 'patch_activations', arguments: PATCH }] },
      { hang: true },
    ]);
    const ac = new AbortController();
    llm.onHang = () => setTimeout(() => ac.abort(), 20);
    let first;
    try {
      first = await investigate({ question: 'Does patching restore w7?', toolbox, dataDir, llm: llmFor(llm), budget: 5, signal: ac.signal });
    } finally {
      await llm.close();
    }
    expect(first.status).toBe('interrupted');
    expect(first.message).toContain(`--resume ${first.id}`);
    expect(first.toolCalls).toBe(1);
    const meta = JSON.parse(readFileSync(join(dataDir, 'investigations', first.id, 'investigation.json'), 'utf8'));
    expect(meta.status).toBe('interrupted');
    const patchesBefore = Number((await ws.ctx.store.query("SELECT count(*) FROM experiments WHERE kind LIKE '%patch%'")).rows[0][0]);

    // A new process: new LLM client, new checkpointer reading the file.
    const llm2 = await startScriptedLlm([
      (r) => {
        // The resumed experiment step still has the tool result from before the interruption.
        expect(toolMessages(r)).toHaveLength(1);
        return { text: `Patched (${expIds(lastToolOf(r))[0]}).` };
      },
      (r) => json({ result: 'restored', verdict: 'supported', evidence: expIds(lastUser(r)) }),
      json({ decision: 'conclude', reason: 'done' }),
      (r) => ({ text: `Patching restores it (${expIds(r.body.messages.map((m: any) => m.content ?? '').join(' '))[0]}).` }),
    ]);
    try {
      const model = llmFor(llm2);
      const r = await investigate({ resume: first.id, toolbox, dataDir, llm: model });
      expect(r.status).toBe('concluded');
      expect(r.id).toBe(first.id);
      expect(llm2.remaining()).toBe(0);
      expect(r.toolCalls).toBe(1);
      const patchesAfter = Number((await ws.ctx.store.query("SELECT count(*) FROM experiments WHERE kind LIKE '%patch%'")).rows[0][0]);
      expect(patchesAfter).toBe(patchesBefore);
      const report = readFileSync(join(dataDir, 'findings', `${r.id}-report.md`), 'utf8');
      const ids = expIds(report);
      expect(ids.length).toBeGreaterThan(0);
      for (const id of ids) expect(await ws.ctx.store.getExperiment(id)).toBeTruthy();
      // Usage carries over the resume: 3 requests answered before, 4 after.
      expect(model.usage.snapshot().calls).toBe(7);
      await expect(investigate({ resume: first.id, toolbox, dataDir, llm: model })).rejects.toThrow(/already concluded/);
    } finally {
      await llm2.close();
    }
  });
});
