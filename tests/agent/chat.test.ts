// Chat mode against a scripted OpenAI-compatible server, with the real openai client (and the
// LangChain backend), and the tools through NeuroScope's MCP server in-process, on a random
// word-level model: tool use and a streamed answer, rate-limit retries, malformed tool calls.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChatSession } from '../../agent/chat.ts';
import { createChatModel, resolveLlmConfig, type LlmConfig } from '../../agent/llm/index.ts';
import { McpToolbox } from '../../agent/mcp.ts';
import { openWorkspace, type Workspace } from '../../tools/workspace.ts';
import { writeRandomWordModel } from '../helpers/random-model.ts';
import { lastToolText, startScriptedLlm, toolMessages, type ScriptedLlm, type Step } from './scripted-llm.ts';

const root = mkdtempSync(join(tmpdir(), 'ns-agent-chat-'));
let ws: Workspace;
let toolbox: McpToolbox;

beforeAll(async () => {
  writeRandomWordModel(join(root, 'model'));
  ws = await openWorkspace(join(root, 'model'), join(root, 'data'), { threads: 1 });
  toolbox = await McpToolbox.connect({ kind: 'in-process', workspace: ws });
});

afterAll(async () => {
  await toolbox?.close();
  await ws?.close();
  rmSync(root, { recursive: true, force: true });
});

function config(llm: ScriptedLlm, over: Partial<LlmConfig> = {}): LlmConfig {
  const c = resolveLlmConfig({}, { OPENAI_BASE_URL: llm.url, OPENAI_API_KEY: 'test-key' })!;
  return { ...c, retryBaseMs: 5, retryMaxMs: 50, ...over };
}

async function withLlm(script: Step[], fn: (llm: ScriptedLlm) => Promise<void>): Promise<void> {
  const llm = await startScriptedLlm(script);
  try {
    await fn(llm);
  } finally {
    await llm.close();
  }
}

describe('chat', () => {
  it('calls tools through MCP, streams the answer and counts tokens and cost', async () => {
    await withLlm([
      { reasoning: 'I should look at the model first.', toolCalls: [{ name: 'model_info', arguments: {} }, { name: 'tokenize', arguments: { text: 'w1 w2 w3' } }], usage: { prompt_tokens: 1000, completion_tokens: 50, cached_tokens: 200 } },
      (req) => {
        const tools = toolMessages(req);
        const layers = /^architecture\.layers: (\d+)$/m.exec(tools[0].content)?.[1];
        const count = /^count: (\d+)$/m.exec(tools[1].content)?.[1];
        return { text: `The model has ${layers} layers and "w1 w2 w3" is ${count} tokens.`, usage: { prompt_tokens: 2000, completion_tokens: 20 } };
      },
    ], async (llm) => {
      const session = await ChatSession.create({ toolbox, llm: createChatModel(config(llm)) });
      expect(session.messages[0].content).toContain('Good experimental practice');
      expect(session.messages[0].content).toMatch(/Loaded model: model: layers 3/);
      const tokens: string[] = [];
      const reasoning: string[] = [];
      const events: string[] = [];
      const turn = await session.send('How many layers, and how does "w1 w2 w3" tokenize?', {
        onToken: (d) => tokens.push(d),
        onReasoning: (d) => reasoning.push(d),
        onToolStart: (e) => events.push(`start ${e.name}`),
        onToolEnd: (e) => events.push(`end ${e.name} ${e.ok}`),
      });
      expect(turn.text).toBe('The model has 3 layers and "w1 w2 w3" is 3 tokens.');
      expect(tokens.length).toBeGreaterThan(3);
      expect(tokens.join('')).toBe(turn.text);
      expect(reasoning.join('')).toBe('I should look at the model first.');
      expect(events).toEqual(['start model_info', 'end model_info true', 'start tokenize', 'end tokenize true']);
      expect(turn.toolCalls.map((c) => c.ok)).toEqual([true, true]);
      // The second request answers each tool call id of the first.
      const ids = llm.requests[0].body.messages ? (session.messages.find((m) => m.role === 'assistant') as any).tool_calls.map((c: any) => c.id) : [];
      expect(toolMessages(llm.requests[1]).map((m) => m.tool_call_id)).toEqual(ids);
      expect(new Set(ids).size).toBe(2);
      // Requests carry the MCP tools as functions, streamed with usage.
      const fnNames = llm.requests[0].body.tools.map((t: any) => t.function.name);
      expect(fnNames).toEqual(expect.arrayContaining(['model_info', 'patch_activations', 'query_activations', 'write_finding']));
      expect(llm.requests[0].body.stream).toBe(true);
      expect(llm.requests[0].body.stream_options).toEqual({ include_usage: true });
      const u = session.usage!;
      expect(u).toMatchObject({ calls: 2, inputTokens: 3000, cachedInputTokens: 200, outputTokens: 70, callsWithoutUsage: 0 });
      // gpt-5: $1.25 / M input, $0.125 / M cached, $10 / M output
      expect(u.cost).toBeCloseTo((2800 * 1.25 + 200 * 0.125 + 70 * 10) / 1e6, 10);
      expect(session.toMarkdown()).toContain('**Tool call** `tokenize`');
    });
  });

  it('retries 429 and 5xx with backoff, honouring Retry-After', async () => {
    await withLlm([
      { status: 429, headers: { 'retry-after-ms': '20' }, body: { error: { message: 'Rate limit reached for gpt-5', type: 'requests', code: 'rate_limit_exceeded' } } },
      { status: 503 },
      { text: 'ok' },
    ], async (llm) => {
      const session = new ChatSession({ toolbox, llm: createChatModel(config(llm)), systemPrompt: 'test' });
      const retries: { status?: number; delayMs: number }[] = [];
      const turn = await session.send('hi', { onRetry: (e) => retries.push({ status: e.status, delayMs: e.delayMs }) });
      expect(turn.text).toBe('ok');
      expect(retries.map((r) => r.status)).toEqual([429, 503]);
      expect(retries[0].delayMs).toBe(20);
      expect(llm.requests).toHaveLength(3);
      expect(session.usage!.retries).toBe(2);
    });
  });

  it('does not retry quota exhaustion, and says what went wrong', async () => {
    await withLlm([{ status: 429, body: { error: { message: 'You exceeded your current quota', type: 'insufficient_quota', code: 'insufficient_quota' } } }], async (llm) => {
      const session = new ChatSession({ toolbox, llm: createChatModel(config(llm)), systemPrompt: 'test' });
      await expect(session.send('hi')).rejects.toThrow(/exceeded your current quota/);
      expect(llm.requests).toHaveLength(1);
    });
  });

  it('answers malformed tool calls with errors the model recovers from', async () => {
    await withLlm([
      {
        toolCalls: [
          { name: 'tokenize', arguments: '{"text": "w1 w2' },
          { name: 'tokenise', arguments: { text: 'w1' } },
          { name: 'tokenize', arguments: { txt: 'w1' } },
          { name: 'model_info', arguments: '', id: '' },
        ],
      },
      (req) => {
        const t = toolMessages(req);
        expect(t).toHaveLength(4);
        expect(t[0].content).toMatch(/^Error: the arguments are not valid JSON .*Nothing was run/s);
        expect(t[1].content).toMatch(/^Error: there is no tool "tokenise".*Did you mean "tokenize"\?/s);
        expect(t[2].content).toMatch(/^Error: .*invalid arguments for tokenize/s);
        expect(t[3].content).toContain('architecture.layers: 3');
        return { toolCalls: [{ name: 'tokenize', arguments: { text: 'w1 w2' } }] };
      },
      (req) => ({ text: `Recovered: ${/^count: (\d+)$/m.exec(lastToolText(req))?.[1]} tokens.` }),
    ], async (llm) => {
      const session = new ChatSession({ toolbox, llm: createChatModel(config(llm)), systemPrompt: 'test' });
      const turn = await session.send('tokenize w1 w2');
      expect(turn.text).toBe('Recovered: 2 tokens.');
      expect(turn.toolCalls.map((c) => [c.name, c.ran, c.ok])).toEqual([
        ['tokenize', false, false], ['tokenise', false, false], ['tokenize', true, false], ['model_info', true, true], ['tokenize', true, true],
      ]);
      expect(turn.warnings.join(' ')).toMatch(/without an id/);
    });
  });

  it('drives the same turn through the LangChain backend', async () => {
    await withLlm([
      { toolCalls: [{ name: 'tokenize', arguments: { text: 'w5 w6 w7 w8' } }] },
      { status: 429, headers: { 'retry-after': '0' } },
      (req) => ({ text: `${/^count: (\d+)$/m.exec(lastToolText(req))?.[1]} tokens`, usage: { prompt_tokens: 10, completion_tokens: 2 } }),
    ], async (llm) => {
      const session = new ChatSession({ toolbox, llm: createChatModel(config(llm, { backend: 'langchain', model: 'gpt-5-mini' })), systemPrompt: 'test' });
      const tokens: string[] = [];
      const turn = await session.send('count', { onToken: (d) => tokens.push(d) });
      expect(turn.text).toBe('4 tokens');
      expect(tokens.join('')).toBe('4 tokens');
      expect(llm.requests[0].body.tools.length).toBeGreaterThan(5);
      expect(session.usage).toMatchObject({ model: 'gpt-5-mini', retries: 1 });
      expect(session.usage!.inputTokens).toBeGreaterThan(10);
    });
  });

  it('sends reasoning effort to models that take it, and drops it when a server refuses it', async () => {
    await withLlm([
      { status: 400, body: { error: { message: 'Unrecognized request argument supplied: reasoning_effort', type: 'invalid_request_error' } } },
      { text: 'one' },
      { text: 'two' },
    ], async (llm) => {
      const session = new ChatSession({ toolbox, llm: createChatModel(config(llm, { model: 'openai/gpt-oss-20b', reasoningEffort: 'low' })), systemPrompt: 'test' });
      const turn = await session.send('a');
      expect(turn.text).toBe('one');
      expect(turn.warnings.join(' ')).toMatch(/refused "reasoning_effort"/);
      await session.send('b');
      expect(llm.requests.map((r) => r.body.reasoning_effort)).toEqual(['low', undefined, undefined]);
      // No price is known for a self-hosted model: the cost is unknown, not zero.
      expect(session.usage).toMatchObject({ cost: 'unknown', costNote: 'no price known for model "openai/gpt-oss-20b"' });
    });
    await withLlm([{ text: 'x' }], async (llm) => {
      const session = new ChatSession({ toolbox, llm: createChatModel(config(llm, { model: 'gpt-4o', reasoningEffort: 'high' })), systemPrompt: 'test' });
      await session.send('a');
      expect(llm.requests[0].body.reasoning_effort).toBeUndefined();
    });
  });

  it('cancels a turn cleanly and keeps the conversation valid', async () => {
    await withLlm([{ hang: true }, { text: 'after' }], async (llm) => {
      const session = new ChatSession({ toolbox, llm: createChatModel(config(llm)), systemPrompt: 'test' });
      const ac = new AbortController();
      llm.onHang = () => setTimeout(() => ac.abort(), 10);
      const turn = await session.send('hang', { signal: ac.signal });
      expect(turn.aborted).toBe(true);
      const next = await session.send('again');
      expect(next.text).toBe('after');
    });
  });
});
