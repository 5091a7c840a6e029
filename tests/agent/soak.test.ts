// Soak: an unattended investigation of 100 experiment rounds, 30 large tool results per round (real
// MCP tool calls on a random word-level model), against a scripted server that stalls mid-stream,
// resets connections (before a response and mid-stream), rate-limits and fails with 5xx, on a
// 32k-token context budget. It must end concluded, with every request under the budget and every
// experiment id still in front of the model. Prints the request-size curve and the soak figures.
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { investigate, type InvestigationEvent } from '../../agent/investigate/index.ts';
import { createChatModel, resolveLlmConfig } from '../../agent/llm/index.ts';
import { agentFixture } from './agent-fixture.ts';
import { startScriptedLlm, toolMessages, type RecordedRequest, type Step } from './scripted-llm.ts';

const ROUNDS = Number(process.env.SOAK_ROUNDS ?? 100);
const CALLS = 30;
const CONTEXT_TOKENS = 32_768;

const fx = agentFixture('soak');

const json = (v: unknown) => ({ text: JSON.stringify(v) });
const expIds = (text: string) => [...new Set(text.match(/exp_[a-z0-9]+/g) ?? [])];
/** Four 200-character columns: a 34k-character result (40 rows shown), which the agent clips to 24k characters for the model. */
const BIG_QUERY = { sql: "SELECT range AS i, repeat('abcdefgh', 25) AS a, repeat('bcdefghi', 25) AS b, repeat('cdefghij', 25) AS c, repeat('defghijk', 25) AS d FROM range(700)", maxRows: 2000 };
/** 300 words: long arguments (1.5k characters) and a 3.6k-character result. */
const LONG_TEXT = Array.from({ length: 300 }, (_, i) => `w${(i * 7) % 60}`).join(' ');

describe('soak', () => {
  it(`${ROUNDS} rounds x ${CALLS} large tool results with stalls, resets, 429s and 5xx stay under a ${CONTEXT_TOKENS}-token budget and conclude`, async () => {
    const seenExps: string[] = [];
    /** One experiment round: 30 calls (large queries, one tokenize of a long text); every 10th round one is an ablation (an experiment id to keep). */
    /** The ablations' experiment ids, from the newest results of each request (what the model reads first). */
    const collect = (req: RecordedRequest) => {
      for (const m of toolMessages(req).slice(-CALLS)) for (const id of expIds(m.content)) if (!seenExps.includes(id)) seenExps.push(id);
    };
    const round = (r: number) => (req: RecordedRequest) => {
      collect(req);
      const calls = Array.from({ length: CALLS }, (_, k) => (r % 10 === 0 && k === CALLS - 1
        ? { name: 'ablate', arguments: { prompts: ['w1 w2 w3 w4 w5'], target: 'w7', distractor: 'w8', components: [`L${r % 3}.H${k % 4}`], method: 'zero' } }
        : k === 0 ? { name: 'tokenize', arguments: { text: LONG_TEXT } } : { name: 'query_activations', arguments: BIG_QUERY }));
      return { toolCalls: calls, text: r % 5 === 0 ? `Round ${r}: ${'measuring '.repeat(40)}` : undefined };
    };
    const faults = { stall: 0, resetBefore: 0, resetMid: 0, rateLimited: 0, serverError: 0 };
    const script: Step[] = [
      json({ hypothesis: 'Large store queries and tokenization are stable across repeated calls', prediction: 'every call gives the same rows and counts' }),
      json({ plan: `${ROUNDS} rounds of ${CALLS} calls, with an ablation every tenth round` }),
    ];
    for (let r = 1; r <= ROUNDS; r++) {
      if (r % 7 === 0) (script.push({ toolCalls: [{ name: 'tokenize', arguments: { text: 'w1' } }], stallAfter: 2 }), faults.stall++);
      if (r % 11 === 0) (script.push({ reset: true }), faults.resetBefore++);
      if (r % 13 === 0) (script.push({ status: 429, headers: { 'retry-after-ms': '1' } }), faults.rateLimited++);
      if (r % 17 === 0) (script.push({ toolCalls: [{ name: 'tokenize', arguments: { text: 'w1' } }], resetAfter: 2 }), faults.resetMid++);
      if (r % 19 === 0) (script.push({ status: 502 }), faults.serverError++);
      script.push(round(r));
    }
    let finalExperiment: RecordedRequest | null = null;
    script.push(
      (req) => {
        collect(req);
        finalExperiment = req;
        return { text: `All ${ROUNDS} rounds done.` };
      },
      (req) => {
        const prompt = req.body.messages.at(-1).content as string;
        return json({ result: `Counts were stable; ablations ${expIds(prompt).join(', ')}`, verdict: 'supported', evidence: expIds(prompt) });
      },
      (req) => ({ text: `Stable (${expIds(JSON.stringify(req.body.messages)).join(', ')}).` }),
    );
    const llm = await startScriptedLlm(script);
    const events: InvestigationEvent[] = [];
    const t0 = Date.now();
    try {
      const model = createChatModel({
        ...resolveLlmConfig({ contextTokens: String(CONTEXT_TOKENS) }, { OPENAI_BASE_URL: llm.url })!,
        retryBaseMs: 1, retryMaxMs: 5, maxRetries: 4, idleTimeoutMs: 200, timeoutMs: 10_000,
      });
      const r = await investigate({
        question: 'Are large queries and tokenization stable?', toolbox: fx.toolbox, dataDir: fx.dataDir, llm: model, budget: ROUNDS * CALLS + 1, maxRounds: ROUNDS + 1, maxHypotheses: 1,
        onEvent: (e) => {
          if (process.env.SOAK_TRACE) console.log(Date.now() - t0, e.type, e.type === 'tool-end' ? `${e.name} ${e.ms}` : e.type === 'step' ? e.message : '');
          events.push(e);
        },
      });
      const seconds = (Date.now() - t0) / 1000;
      expect(r.status).toBe('concluded');
      expect(llm.remaining()).toBe(0);
      expect(r.toolCalls).toBe(ROUNDS * CALLS);
      expect(r.findings).toEqual([`${r.id}-h1`, `${r.id}-report`]);

      // Every request stayed under the budget: its body, at 3 characters per token, is within the window less the reply's reserve.
      const sizes = llm.requests.map((q) => q.bytes);
      const tokens = llm.requests.map((q) => Math.ceil(JSON.stringify(q.body).length / model.context.charsPerToken));
      expect(Math.max(...tokens)).toBeLessThanOrEqual(model.context.inputTokens);
      expect(Math.max(...tokens)).toBeLessThanOrEqual(CONTEXT_TOKENS);

      // Faults were met and retried, each with its reason shown.
      const retries = events.filter((e) => e.type === 'retry').map((e) => (e as { reason: string }).reason);
      const count = (re: RegExp) => retries.filter((x) => re.test(x)).length;
      expect(count(/^stalled stream/)).toBe(faults.stall);
      expect(count(/^rate limited \(429\)/)).toBe(faults.rateLimited);
      expect(count(/^server error \(502\)/)).toBe(faults.serverError);
      // A reused keep-alive socket the server has just closed can add a genuine reset of its own.
      expect(count(/^connection error/)).toBeGreaterThanOrEqual(faults.resetBefore + faults.resetMid);

      // Every ablation's experiment id is still in front of the model in the last experiment request, and in the analysis and the report.
      if (seenExps.length !== ROUNDS / 10) console.log(finalExperiment!.body.messages.map((m: any) => `${m.role}:${String(m.content).slice(0, 300)}`).slice(-4));
      expect(seenExps).toHaveLength(ROUNDS / 10);
      const last = JSON.stringify(finalExperiment!.body.messages);
      for (const id of seenExps) expect(last).toContain(id);
      const report = readFileSync(join(fx.dataDir, 'findings', `${r.id}-report.md`), 'utf8');
      for (const id of seenExps) expect(report).toContain(id);
      expect(last).toContain('(NeuroScope research log:');

      const experimentSizes = llm.requests.filter((q) => q.body.tools).map((q) => q.bytes);
      const curve = experimentSizes.filter((_, i) => i % 10 === 0 || i === experimentSizes.length - 1).map((b) => `${(b / 1024).toFixed(1)}`);
      const checkpoint = statSync(join(fx.dataDir, 'investigations', r.id, 'checkpoints.json')).size;
      console.log([
        `soak: ${ROUNDS} rounds x ${CALLS} tool results (per round: 28 queries of 34.5k chars, clipped to 24k; 1 tokenize with 1.5k-char arguments; 1 more query or, every 10th round, an ablation), ${CONTEXT_TOKENS}-token budget (${model.context.inputTokens} for the request)`,
        `  ${llm.requests.length} requests (${retries.length} retried: ${JSON.stringify(faults)}), ${r.toolCalls} tool calls, ${seconds.toFixed(1)} s on a shared machine`,
        `  request body: max ${(Math.max(...sizes) / 1024).toFixed(1)} KB = ${Math.max(...tokens)} est. tokens; mean ${(sizes.reduce((a, b) => a + b, 0) / sizes.length / 1024).toFixed(1)} KB`,
        `  experiment request sizes (KB), every 10th request: ${curve.join(' ')}`,
        `  server-counted prompt tokens (chars/4 of the messages): max ${Math.max(...llm.requests.map((q) => Math.ceil(JSON.stringify(q.body.messages).length / 4)))}`,
        `  checkpoint file ${(checkpoint / 1024 / 1024).toFixed(1)} MB; notes ${events.filter((e) => e.type === 'note').length}`,
      ].join('\n'));
    } finally {
      await llm.close();
    }
  }, 600_000);
});
