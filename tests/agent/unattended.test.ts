// The agent against a harsh OpenAI-compatible server (the real openai client, the scripted server on
// 127.0.0.1, the tools through NeuroScope's MCP server in-process on a random word-level model):
// streams that stall or reset, timeouts, 408/409/429/5xx, replies cut at the output limit, tool-call
// names repeated in every delta, oversized model text, and what the CLI shows about each.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ChatSession } from '../../agent/chat.ts';
import { investigateCommand } from '../../agent/cli.ts';
import { investigate, InvestigationFailedError, type InvestigationEvent } from '../../agent/investigate/index.ts';
import { createChatModel, LlmError, resolveLlmConfig, type LlmConfig } from '../../agent/llm/index.ts';
import { TRUNCATED_NOTE } from '../../agent/model-text.ts';
import { agentFixture } from './agent-fixture.ts';
import { toolMessages, withLlm, type ScriptedLlm } from './scripted-llm.ts';

const fx = agentFixture('harsh');

function config(llm: ScriptedLlm, over: Partial<LlmConfig> = {}): LlmConfig {
  return { ...resolveLlmConfig({}, { OPENAI_BASE_URL: llm.url })!, retryBaseMs: 5, retryMaxMs: 20, idleTimeoutMs: 300, ...over };
}

const json = (v: unknown) => ({ text: JSON.stringify(v) });
const session = (llm: ScriptedLlm, over: Partial<LlmConfig> = {}) => new ChatSession({ toolbox: fx.toolbox, llm: createChatModel(config(llm, over)), systemPrompt: 'test' });

describe('streams that stall or break', () => {
  it('abandons a stream that stalls after the headers and retries it while nothing was shown', async () => {
    await withLlm([
      { toolCalls: [{ name: 'tokenize', arguments: { text: 'w1 w2' } }], stallAfter: 3 },
      { toolCalls: [{ name: 'tokenize', arguments: { text: 'w1 w2' } }] },
      { text: 'two tokens' },
    ], async (llm) => {
      const reasons: string[] = [];
      const turn = await session(llm).send('count', { onRetry: (e) => reasons.push(e.reason) });
      expect(turn.text).toBe('two tokens');
      expect(reasons).toEqual(['stalled stream (nothing for 0.3 s)']);
      expect(llm.requests).toHaveLength(3);
    });
  });

  it('ends a chat turn whose text stalled mid-stream, keeping the partial answer marked (interrupted)', async () => {
    await withLlm([{ text: 'The first part of an answer that never ends', chunk: 5, stallAfter: 4 }, { text: 'next' }], async (llm) => {
      const s = session(llm);
      const t0 = Date.now();
      const err = await s.send('explain').catch((e) => e);
      const ms = Date.now() - t0;
      expect(err).toBeInstanceOf(LlmError);
      expect(err.message).toMatch(/stalled stream \(nothing for 0\.3 s\); not retried: part of the reply had already been shown/);
      console.log(`stalled chat turn ended after ${ms} ms (idle timeout 300 ms)`);
      const last = s.messages.at(-1)!;
      expect(last).toEqual({ role: 'assistant', content: 'The first part\n(interrupted)' });
      // The conversation stays valid: the next turn goes through.
      expect((await s.send('again')).text).toBe('next');
    });
  });

  it('retries connection resets, timeouts before the headers, 408, 409, 429 and 5xx, saying why', async () => {
    await withLlm([
      { reset: true },
      { hang: true },
      { status: 408 },
      { status: 409 },
      { status: 429 },
      { status: 500 },
      { toolCalls: [{ name: 'model_info', arguments: {} }], resetAfter: 2 },
      { text: 'fine' },
    ], async (llm) => {
      const reasons: string[] = [];
      const turn = await session(llm, { timeoutMs: 300, maxRetries: 8 }).send('go', { onRetry: (e) => reasons.push(e.reason) });
      expect(turn.text).toBe('fine');
      expect(reasons).toEqual([
        expect.stringMatching(/^connection error \(Connection error\.: (terminated|fetch failed)/),
        'timed out waiting for the response (Request timed out.)',
        'HTTP 408', 'HTTP 409', 'rate limited (429)', 'server error (500)',
        expect.stringMatching(/^connection error \(terminated/),
      ]);
    });
  });

  it('says clearly when retries run out', async () => {
    await withLlm([{ status: 503 }, { status: 503 }, { status: 503 }], async (llm) => {
      const err = await session(llm, { maxRetries: 2 }).send('go').catch((e) => e);
      expect(err.message).toMatch(/failed: server error \(503\); gave up after 3 attempts \(NEUROSCOPE_LLM_RETRIES=2\) \(last error: 503/);
    });
  });
});

describe('replies', () => {
  it('merges tool-call names repeated in every delta instead of concatenating them', async () => {
    await withLlm([
      { toolCalls: [{ name: 'tokenize', arguments: { text: 'w1 w2 w3 w4 w5 w6' } }], repeatNames: true },
      (r) => ({ text: `ok ${/count: ?(\d+)/.exec(toolMessages(r)[0].content)?.[1]}` }),
    ], async (llm) => {
      const turn = await session(llm).send('count');
      expect(turn.toolCalls.map((c) => [c.name, c.ok])).toEqual([['tokenize', true]]);
      expect(turn.text).toBe('ok 6');
    });
  });

  it('marks a reply cut at the output limit as truncated and clips oversized text', async () => {
    const huge = 'x'.repeat(200_000);
    await withLlm([{ text: 'An answer that stops mid', finishReason: 'length' }, { text: huge, chunk: 50_000 }, (r) => ({ text: String(r.body.messages.at(-2).content.length) })], async (llm) => {
      const s = session(llm);
      const notes: string[] = [];
      const t1 = await s.send('a', { onNote: (n) => notes.push(n) });
      expect(t1.text).toBe(`An answer that stops mid\n${TRUNCATED_NOTE}`);
      expect(notes).toEqual(['the reply hit the output limit (finish_reason "length"); it is marked truncated']);
      const t2 = await s.send('b');
      expect(t2.text.length).toBeLessThan(32_200);
      expect(t2.text).toMatch(/clipped: the model wrote 200,000 characters; 32,000 are kept\)$/);
      // What went back to the model is the clipped text.
      expect(Number((await s.send('c')).text)).toBe(t2.text.length);
    });
  });

  it('shows every refused tool call with its reason', async () => {
    await withLlm([
      { toolCalls: [{ name: 'tokenise', arguments: { text: 'w1' } }, { name: 'tokenize', arguments: '{"text": ' }, { name: 'model_info', arguments: {} }] },
      { text: 'done' },
    ], async (llm) => {
      const refused: string[] = [];
      await session(llm).send('go', { onToolRefused: (e) => refused.push(`${e.name}: ${e.reason}`) });
      expect(refused).toEqual([
        expect.stringMatching(/^tokenise: there is no tool "tokenise". Nothing was run. Did you mean "tokenize"\?/),
        expect.stringMatching(/^tokenize: the arguments are not valid JSON \(.*\): \{"text": . Nothing was run; call tokenize again/),
      ]);
    });
  });

  it('adds no abort listener per request or tool call (no MaxListenersExceededWarning)', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
    process.on('warning', onWarning);
    const calls = Array.from({ length: 14 }, (_, i) => ({ name: 'tokenize', arguments: { text: `w${i % 9}` } }));
    try {
      await withLlm([{ toolCalls: calls }, { toolCalls: calls }, { text: 'done' }], async (llm) => {
        const ac = new AbortController();
        const turn = await session(llm).send('many', { signal: ac.signal });
        expect(turn.toolCalls.filter((c) => c.ok)).toHaveLength(28);
      });
      await new Promise((r) => setTimeout(r, 50)); // warnings are emitted on the next tick
    } finally {
      process.off('warning', onWarning);
    }
    expect(warnings.filter((w) => /MaxListeners/.test(w))).toEqual([]);
  });
});

describe('investigations that end honestly', () => {
  it('prints the id and the exact resume command at the start and on failure, and resumes after a stall', async () => {
    const env = { ...process.env };
    const lines: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    await withLlm([{ text: '{"hypothesis": "w7 wins', stallAfter: 3 }], async (llm) => {
      process.env.NEUROSCOPE_LLM_RETRIES = '0';
      process.env.NEUROSCOPE_LLM_IDLE_TIMEOUT_MS = '300';
      process.stderr.write = ((chunk: string | Uint8Array) => (lines.push(String(chunk)), true)) as typeof process.stderr.write;
      let err: Error;
      const t0 = Date.now();
      try {
        err = await investigateCommand({ model: fx.modelDir, data: fx.dataDir, 'llm-base-url': llm.url, 'context-tokens': '64000' }, ['Does', 'w7', 'win?']).catch((e) => e);
      } finally {
        process.stderr.write = write;
        process.env = env;
      }
      console.log(`stalled investigation stopped after ${Date.now() - t0} ms (idle timeout 300 ms, no retries)`);
      const out = lines.join('');
      const id = /investigation (inv-[\w-]+); if it stops, carry on with: /.exec(out)?.[1];
      expect(id).toBeTruthy();
      const cmd = `neuroscope investigate --resume ${id} --model ${fx.modelDir} --data ${fx.dataDir} --llm-base-url ${llm.url} --context-tokens 64000`;
      expect(out).toContain(`carry on with: ${cmd}\n`);
      expect(err!).toBeInstanceOf(InvestigationFailedError);
      expect(err!.message).toMatch(/stalled stream \(nothing for 0\.3 s\)/);
      expect(err!.message.endsWith(`Its state is saved; carry on with: ${cmd}`)).toBe(true);
      expect(JSON.parse(readFileSync(join(fx.dataDir, 'investigations', id!, 'investigation.json'), 'utf8')).status).toBe('failed');

      llm.push(
        json({ hypothesis: 'w7 wins', prediction: 'p' }),
        json({ plan: 'tokenize' }),
        { toolCalls: [{ name: 'tokenize', arguments: { text: 'w1 w7' } }] },
        { text: 'measured' },
        json({ result: 'w7 is one token', verdict: 'supported', evidence: [] }),
        json({ decision: 'conclude', reason: 'done' }),
        { text: 'w7 is one token.' },
      );
      const r = await investigate({ resume: id!, toolbox: fx.toolbox, dataDir: fx.dataDir, llm: createChatModel(config(llm)) });
      expect(r.status).toBe('concluded');
      expect(r.toolCalls).toBe(1);
    });
  });

  it('fits a resumed investigation under the budget configured when it resumes', async () => {
    const big = { sql: "SELECT range AS i, repeat('abcdefgh', 25) AS a, repeat('bcdefghi', 25) AS b, repeat('cdefghij', 25) AS c, repeat('defghijk', 25) AS d FROM range(700)", maxRows: 2000 };
    let id = '';
    await withLlm([
      json({ hypothesis: 'queries are stable', prediction: 'p' }),
      json({ plan: 'query' }),
      { toolCalls: Array.from({ length: 12 }, () => ({ name: 'query_activations', arguments: big })) },
      { hang: true },
    ], async (llm) => {
      const ac = new AbortController();
      llm.onHang = () => setTimeout(() => ac.abort(), 20);
      // A large window: the twelve 24k-character results are kept whole in the saved state.
      const r = await investigate({ question: 'Are queries stable?', toolbox: fx.toolbox, dataDir: fx.dataDir, llm: createChatModel(config(llm, { contextTokens: 400_000 })), signal: ac.signal });
      expect(r.status).toBe('interrupted');
      id = r.id;
      expect(llm.requests.at(-1)!.bytes).toBeGreaterThan(12 * 24_000);
    });
    await withLlm([
      { text: 'done' },
      json({ result: 'stable', verdict: 'supported', evidence: [] }),
      json({ decision: 'conclude', reason: 'done' }),
      { text: 'Stable.' },
    ], async (llm) => {
      const model = createChatModel(config(llm, { contextTokens: 32_768 }));
      const r = await investigate({ resume: id, toolbox: fx.toolbox, dataDir: fx.dataDir, llm: model });
      expect(r.status).toBe('concluded');
      const first = llm.requests[0];
      expect(first.body.tools).toBeTruthy();
      expect(JSON.stringify(first.body).length / model.context.charsPerToken).toBeLessThanOrEqual(model.context.inputTokens);
      // The twelve results the model had not read yet are all there, shortened evenly.
      expect(toolMessages(first)).toHaveLength(12);
      expect(toolMessages(first)[0].content).toMatch(/more characters cut to fit the context budget/);
    });
  });

  it('says so when no measurement was made, whatever the model claims', async () => {
    await withLlm([
      json({ hypothesis: 'w7 wins', prediction: 'p' }),
      json({ plan: 'none' }),
      { toolCalls: [{ name: 'no_such_tool', arguments: {} }] },
      { text: 'I am sure it is true.' },
      json({ result: 'It is true.', verdict: 'supported', evidence: [] }),
      json({ decision: 'conclude', reason: 'sure' }),
      { text: 'w7 wins.' },
    ], async (llm) => {
      const events: InvestigationEvent[] = [];
      const r = await investigate({ question: 'Does w7 win?', toolbox: fx.toolbox, dataDir: fx.dataDir, llm: createChatModel(config(llm)), onEvent: (e) => events.push(e) });
      expect(r.status).toBe('concluded');
      expect(r.message).toMatch(/no measurement was made, so the verdicts rest on no data/);
      expect(events.filter((e) => e.type === 'tool-refused').map((e) => (e as { name: string }).name)).toEqual(['no_such_tool']);
      const h1 = readFileSync(join(fx.dataDir, 'findings', `${r.id}-h1.md`), 'utf8');
      expect(h1).toContain('## Verdict: inconclusive');
      expect(h1).toContain('No measurement was made: no tool call for this hypothesis ran successfully, so this verdict rests on no data. It is true.');
      const report = readFileSync(join(fx.dataDir, 'findings', `${r.id}-report.md`), 'utf8');
      expect(report).toContain('> **No measurement was made** in this investigation');
    });
  });

  it('writes the finding and the report when the model sends a 200k-character hypothesis and a truncated summary', async () => {
    const huge = `Head L1.H0 ${'matters '.repeat(25_000)}`;
    await withLlm([
      { text: JSON.stringify({ hypothesis: huge, prediction: 'p' }), chunk: 50_000 },
      json({ plan: 'tokenize' }),
      { toolCalls: [{ name: 'tokenize', arguments: { text: 'w1' } }] },
      (r) => {
        // The hypothesis went into the experiment prompt clipped.
        expect(r.body.messages[1].content.length).toBeLessThan(10_000);
        return { text: 'The summary stops', finishReason: 'length' };
      },
      json({ result: 'one token', verdict: 'inconclusive', evidence: [] }),
      json({ decision: 'conclude', reason: 'done' }),
      { text: 'Done.' },
    ], async (llm) => {
      const r = await investigate({ question: 'Does L1.H0 matter?', toolbox: fx.toolbox, dataDir: fx.dataDir, llm: createChatModel(config(llm)) });
      expect(r.status).toBe('concluded');
      expect(r.findings).toEqual([`${r.id}-h1`, `${r.id}-report`]);
      const h1 = readFileSync(join(fx.dataDir, 'findings', `${r.id}-h1.md`), 'utf8');
      expect(h1).toContain('clipped: the model wrote 200,010 characters; 4,000 are kept)');
      expect(h1).toContain(`The summary stops\n${TRUNCATED_NOTE}`);
    });
  });
});
