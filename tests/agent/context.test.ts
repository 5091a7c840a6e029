// Fitting a conversation under a context budget: older tool results become digests that keep every
// id, the oldest turns fold into the research log, the newest results share the room left, and the
// history stays a valid OpenAI conversation (every tool message answers a call just before it).
import { describe, expect, it } from 'vitest';
import { ContextTooSmallError, digestToolResult, fitHistory, LOG_MARK } from '../../agent/context.ts';
import { ContextBudget, requestChars } from '../../agent/llm/context-budget.ts';
import { knownContextTokens, resolveLlmConfig } from '../../agent/llm/config.ts';
import type { ChatMessage } from '../../agent/llm/types.ts';

const system: ChatMessage = { role: 'system', content: 'You are a test.' };

/** Round r: one assistant message calling `n` tools, each answered with `size` characters naming its ids at the end. */
function round(r: number, n: number, size: number, extraIds = 0): ChatMessage[] {
  const calls = Array.from({ length: n }, (_, k) => ({ id: `call_${r}_${k}`, type: 'function' as const, function: { name: k % 2 ? 'tokenize' : 'patch_activations', arguments: '{}' } }));
  return [
    { role: 'assistant', content: `round ${r}`, tool_calls: calls },
    ...calls.map((c, k): ChatMessage => ({ role: 'tool', tool_call_id: c.id, content: `${'x'.repeat(size)} exp_r${r}k${k} run_r${r}k${k}${Array.from({ length: extraIds }, (_, e) => ` run_r${r}k${k}e${e}`).join('')}` })),
  ];
}

function expectValid(h: ChatMessage[]): void {
  for (let i = 0; i < h.length; i++) {
    const m = h[i];
    if (m.role !== 'tool') continue;
    let j = i - 1;
    while (h[j].role === 'tool') j--;
    const a = h[j];
    expect(a.role).toBe('assistant');
    expect((a as { tool_calls?: { id: string }[] }).tool_calls?.map((c) => c.id)).toContain(m.tool_call_id);
  }
}

describe('context budget', () => {
  it('knows the windows of gpt-5 and gpt-oss, and takes a flag or the environment over them', () => {
    expect(knownContextTokens('gpt-5')).toBe(272_000);
    expect(knownContextTokens('openai/gpt-oss-20b')).toBe(131_072);
    expect(knownContextTokens('gpt-oss:20b')).toBe(131_072);
    expect(knownContextTokens('my-local-model')).toBeNull();
    const env = { OPENAI_BASE_URL: 'http://127.0.0.1:1/v1' };
    expect(resolveLlmConfig({ model: 'openai/gpt-oss-20b' }, env)!).toMatchObject({ contextTokens: 131_072, contextSource: 'known for openai/gpt-oss-20b' });
    expect(resolveLlmConfig({}, { ...env, NEUROSCOPE_MODEL: 'llama', NEUROSCOPE_LLM_CONTEXT_TOKENS: '50000' })!.contextTokens).toBe(50_000);
    expect(resolveLlmConfig({ contextTokens: '40000' }, { ...env, NEUROSCOPE_LLM_CONTEXT_TOKENS: '50000' })!.contextTokens).toBe(40_000);
    expect(resolveLlmConfig({ model: 'llama' }, env)!.contextTokens).toBe(32_768);
    expect(() => resolveLlmConfig({ contextTokens: '100' }, env)).toThrow(/--context-tokens must be at least 4096 tokens/);
    expect(() => resolveLlmConfig({ contextTokens: 'lots' }, env)).toThrow(/--context-tokens must be a non-negative integer, got "lots"/);
    // 32k window: 1/8 kept for the reply, requests under 28,672 tokens = 86,016 characters at 3 per token.
    const b = new ContextBudget(32_768);
    expect([b.reserveTokens, b.inputTokens, b.inputChars]).toEqual([4096, 28_672, 86_016]);
    b.observe(30_000, 15_000); // the server counted 2 characters per token: the estimate follows
    expect(b.charsPerToken).toBeCloseTo(1.9, 10);
  });

  it('leaves a history that fits untouched', () => {
    const h = round(1, 3, 100);
    expect(fitHistory(new ContextBudget(32_768), [system], h).history).toBe(h);
  });

  it('replaces older tool results with digests that keep every id, newest results first kept whole', () => {
    const h = [...round(1, 4, 9000), ...round(2, 4, 9000), ...round(3, 2, 9000)];
    const budget = new ContextBudget(32_768);
    const { history, report } = fitHistory(budget, [system], h);
    expect(requestChars([system, ...history])).toBeLessThanOrEqual(budget.inputChars);
    expect(report.folded).toBe(0);
    expect(report.compacted).toBeGreaterThan(0);
    const first = history[1] as { content: string };
    expect(first.content).toBe(digestToolResult('patch_activations', (h[1] as { content: string }).content));
    expect(first.content).toMatch(/^\[compacted result of patch_activations \(ok, 9018 chars\), to stay within the context budget; experiments exp_r1k0; runs run_r1k0; it began: x{160}…/);
    // The last round, which the model has not read yet, is whole.
    expect(history.slice(-2).map((m) => (m as { content: string }).content.length)).toEqual([9018, 9018]);
    expectValid(history);
  });

  it('folds the oldest turns into a research log that keeps every id', () => {
    const h: ChatMessage[] = [{ role: 'user', content: 'Which heads carry IOI?' }];
    for (let r = 1; r <= 40; r++) h.push(...round(r, 5, 3000));
    const budget = new ContextBudget(32_768);
    const { history, report } = fitHistory(budget, [system], h);
    expect(requestChars([system, ...history])).toBeLessThanOrEqual(budget.inputChars);
    expect(report.folded).toBeGreaterThan(50);
    const log = history[0] as { role: string; content: string };
    expect(log.role).toBe('user');
    expect(log.content.startsWith(LOG_MARK)).toBe(true);
    expect(log.content).toContain('- user: Which heads carry IOI?');
    expect(log.content).toMatch(/- model: round 1; called patch_activations ×3, tokenize ×2; experiments exp_r1k0 exp_r1k1 exp_r1k2 exp_r1k3 exp_r1k4; runs run_r1k0/);
    const all = history.map((m) => (m as { content: string }).content).join('\n');
    for (let r = 1; r <= 40; r++) for (let k = 0; k < 5; k++) expect(all).toContain(`exp_r${r}k${k}`);
    expectValid(history);
    // Fitting again changes nothing: the result is stable.
    expect(fitHistory(budget, [system], history).history).toBe(history);
  });

  it('merges the oldest log entries when the log outgrows a quarter of the budget, still keeping ids', () => {
    const h: ChatMessage[] = [];
    for (let r = 1; r <= 150; r++) h.push(...round(r, 2, 2000, 20));
    const budget = new ContextBudget(32_768);
    const { history } = fitHistory(budget, [system], h);
    const log = (history[0] as { content: string }).content;
    expect(log.length).toBeLessThanOrEqual(budget.inputChars / 4 + 400);
    expect(log).toMatch(/\n- earlier: \d+ turns; called patch_activations ×\d+, tokenize ×\d+; experiments exp_/);
    expect(log).toMatch(/older ids are in the store \(SELECT experiment_id, kind FROM experiments; SELECT run_id, prompt FROM runs\)/);
    // Experiment ids come first: all of them are still there; the newest run ids too.
    const all = history.map((m) => (m as { content: string }).content).join('\n');
    for (let r = 1; r <= 150; r++) expect(all).toContain(`exp_r${r}k1`);
    expect(all).toContain('run_r150k1e19');
  });

  it('clips the newest results evenly when even they do not fit, keeping ids cut off in a note', () => {
    const h = round(1, 30, 18_000);
    const budget = new ContextBudget(32_768);
    const { history, report } = fitHistory(budget, [system], h);
    expect(report.clipped).toBe(30);
    expect(requestChars([system, ...history])).toBeLessThanOrEqual(budget.inputChars);
    const t = (history[5] as { content: string }).content;
    expect(t).toMatch(/more characters cut to fit the context budget; the full result is in the store: query it with query_activations; ids in the cut part: exp_r1k4 run_r1k4\)$/);
  });

  it('says plainly when the budget cannot hold even the system prompt', () => {
    const big: ChatMessage = { role: 'system', content: 'y'.repeat(40_000) };
    expect(() => fitHistory(new ContextBudget(8192), [big], round(1, 1, 100_000))).toThrow(ContextTooSmallError);
    expect(() => fitHistory(new ContextBudget(8192), [big], round(1, 1, 100_000))).toThrow(/too small: the system prompt, instructions and tool descriptions alone take about 13478 tokens; raise --context-tokens/);
  });
});
