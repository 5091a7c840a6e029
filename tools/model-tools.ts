// Tools about the loaded model itself: what it is, switching it, its hook points, how text
// tokenises, and generation (plain or in the harmony chat format of gpt-oss).
import { z } from 'zod';
import { generate } from '../engine/generate.ts';
import {
  developerMessage, HARMONY, parseCompletion, renderConversation, stopTokenIds, systemMessage, type HarmonyMessage,
} from '../engine/harmony.ts';
import { checkCancelled, defineTool, ToolError, type ToolContext } from './define.ts';
import { LIMITS } from './limits.ts';
import { nearestNames } from './names.ts';
import type { ModelSession } from './session.ts';
import { BUILT_IN_MODELS, builtInIdentity } from './workspace.ts';

/** Whether the tokenizer has the harmony chat markers (o200k_harmony, as gpt-oss checkpoints ship). */
export function supportsHarmony(session: ModelSession): boolean {
  return session.tokenizer.tokenId(HARMONY.start) !== undefined && session.tokenizer.tokenId(HARMONY.message) !== undefined;
}

const ModelDescription = z.object({
  modelId: z.string(),
  dir: z.string(),
  builtIn: z.object({ model: z.string(), seed: z.number().int() }).nullable().describe('which built-in gpt-oss-tiny model this is; null for other checkpoints'),
  architecture: z.object({
    layers: z.number().int(), hidden: z.number().int(), heads: z.number().int(), kvHeads: z.number().int(), headDim: z.number().int(),
    experts: z.number().int(), expertsPerToken: z.number().int(), expertHidden: z.number().int(),
    vocab: z.number().int(), slidingWindow: z.number().int(), layerTypes: z.string(),
  }),
  expertsQuantized: z.boolean(),
  maxTokensPerPrompt: z.number().int(),
  tokenizer: z.object({ vocabSize: z.number().int(), harmony: z.boolean() }),
  addresses: z.string(),
});

export const modelInfoOutput = ModelDescription.extend({
  builtInModels: z.array(z.string()),
  store: z.object({ dataDir: z.string(), rows: z.record(z.string(), z.number().int()).describe('row count per table') }),
  limits: z.record(z.string(), z.number()).describe('request limits (tools/limits.ts)'),
});

export function describeModel(session: ModelSession): z.infer<typeof ModelDescription> {
  const c = session.config;
  return {
    modelId: session.modelId,
    dir: session.dir,
    builtIn: builtInIdentity(session.dir),
    architecture: {
      layers: c.numLayers, hidden: c.hiddenSize, heads: c.numHeads, kvHeads: c.numKvHeads, headDim: c.headDim,
      experts: c.numExperts, expertsPerToken: c.expertsPerToken, expertHidden: c.intermediateSize,
      vocab: c.vocabSize, slidingWindow: c.slidingWindow, layerTypes: c.layerTypes.join(','),
    },
    expertsQuantized: session.model.checkpoint.expertsQuantized,
    maxTokensPerPrompt: session.model.maxTokens,
    tokenizer: { vocabSize: session.tokenizer.vocabSize, harmony: supportsHarmony(session) },
    addresses: 'heads L<layer>.H<head>, experts L<layer>.E<expert>, neurons L<layer>.E<expert>.N<neuron>; hooks: see list_hooks',
  };
}

export const modelInfoTool = defineTool({
  name: 'model_info',
  description:
    'Describe the loaded model: id, directory, architecture (layers, heads, KV heads, experts, top-k, vocab, sliding window), ' +
    'tokenizer (harmony chat format or not), the prompt length limit, row counts of the activation store and the request limits. ' +
    'Call this first to know valid layer/head/expert ranges. Example: {}',
  input: z.object({}).strict().meta({ examples: [{}] }),
  output: modelInfoOutput,
  async run(_input, ctx) {
    return {
      ...describeModel(ctx.session),
      builtInModels: [...BUILT_IN_MODELS],
      store: { dataDir: ctx.store.dataDir, rows: await ctx.store.tableCounts() },
      limits: LIMITS,
    };
  },
});

export const loadModelTool = defineTool({
  name: 'load_model',
  description:
    'Switch the shared model: a built-in gpt-oss-tiny model ("tiny-s": 4 layers; "tiny-m": 8 layers, with redundant circuits; "tiny-l": 24 layers), built on first use, ' +
    'or a gpt-oss checkpoint directory in the Hugging Face layout (config.json, safetensors, tokenizer.json). Every later call uses the new model; ' +
    'stored runs keep their model_id. Example: {"model": "tiny-m"}',
  input: z.object({
    model: z.string().min(1).max(4096).describe('"tiny-s", "tiny-m", "tiny-l" or a checkpoint directory (absolute path, or relative to the server\'s working directory)'),
  }).strict().meta({ examples: [{ model: 'tiny-m' }, { model: '/models/gpt-oss-20b' }] }),
  output: z.object({ loaded: ModelDescription, previous: z.string().describe('the model id loaded before') }),
  async run(input, ctx) {
    if (!ctx.models) throw new ToolError('this context cannot switch models (it has no workspace); open a workspace to use load_model');
    checkCancelled(ctx, 'load_model');
    const previous = ctx.session.modelId;
    const session = await ctx.models.load(input.model);
    return { loaded: describeModel(session), previous };
  },
});

export const listHooksTool = defineTool({
  name: 'list_hooks',
  description:
    'List the hook points of the loaded model (TransformerLens-style names; blocks.L.* exists for every layer L) with tensor shapes and what each holds. ' +
    'Use these names in capture_activations, patching and steering. Optional substring filter. Example: {"filter": "attn"}',
  input: z.object({
    filter: z.string().max(200).optional().describe('keep hooks whose name contains this text, e.g. "attn", "mlp", "resid"'),
  }).strict().meta({ examples: [{}, { filter: 'attn' }] }),
  output: z.object({
    layers: z.number().int(),
    hooks: z.array(z.object({ name: z.string(), shape: z.string(), writable: z.boolean(), doc: z.string() })),
    note: z.string(),
  }),
  async run(input, ctx) {
    const all = ctx.session.model.listHooks();
    const hooks = input.filter ? all.filter((h) => h.name.includes(input.filter!)) : all;
    if (!hooks.length) {
      // A filter that matches nothing is a mistake, not an empty model: name the parts that exist.
      const parts = [...new Set(all.filter((h) => h.name.startsWith('blocks.')).map((h) => h.name.replace(/^blocks\.(L|\d+)\./, '')))];
      const other = all.filter((h) => !h.name.startsWith('blocks.')).map((h) => h.name);
      const near = nearestNames(input.filter!, [...new Set([...parts, ...parts.map((x) => x.split('.').pop()!), ...other])], 3);
      throw new ToolError(`no hook name contains "${input.filter}"${near.length ? `; nearest: ${near.join(', ')}` : ''}. `
        + `Hook names are blocks.L.<part> for layer L, with parts ${parts.join(', ')}; and ${other.join(', ')}`);
    }
    return {
      layers: ctx.session.config.numLayers,
      hooks: hooks.map((h) => ({ name: h.name, shape: h.shape, writable: h.writable, doc: h.doc })),
      note: 'shape letters: B batch, T/P positions, H hidden, nH heads, nKV kv heads, d head dim, E experts, k top-k, I expert hidden, V vocab. Patterns: blocks.*.hook_resid_post',
    };
  },
});

export const tokenizeTool = defineTool({
  name: 'tokenize',
  description:
    'Tokenise text with the loaded model\'s tokenizer: each token\'s position, id, text and character offsets [start, end). ' +
    'Use it to choose positions for patching (negative positions count from the end) and to check that clean/corrupted prompts are token-aligned ' +
    'and that answers are single tokens. Give `ids` instead to decode token ids. Example: {"text": "When Mary and John went to the store"}',
  limits: { prompts: ['text'] },
  input: z.object({
    text: z.string().max(LIMITS.maxStringChars).optional().describe('text to tokenise'),
    ids: z.array(z.number().int().min(0)).max(LIMITS.maxTokensPerCall).optional().describe('token ids to decode instead'),
  }).strict().refine((v) => (v.text === undefined) !== (v.ids === undefined), { message: 'give exactly one of text or ids' })
    .meta({ examples: [{ text: 'When Mary and John went to the store' }, { ids: [5, 17, 9] }] }),
  output: z.object({
    count: z.number().int(),
    text: z.string().optional().describe('the decoded text (when ids were given)'),
    overLimit: z.string().optional(),
    tokens: z.array(z.object({
      position: z.number().int(), id: z.number().int(), text: z.string(),
      start: z.number().int().optional().describe('character offset where the token starts'), end: z.number().int().optional(),
    })),
  }),
  async run(input, ctx) {
    const tok = ctx.session.tokenizer;
    if (input.ids !== undefined) {
      const ids = input.ids;
      const V = ctx.session.config.vocabSize;
      const bad = ids.find((id) => id >= V);
      if (bad !== undefined) throw new ToolError(`token id ${bad} is out of range: the model's vocabulary has ${V} ids (valid 0..${V - 1})`);
      return { count: ids.length, text: tok.decode(ids), tokens: ids.map((id, position) => ({ position, id, text: tok.tokenString(id) })) };
    }
    const spans = tok.encodeWithOffsets(input.text!);
    return {
      count: spans.length,
      overLimit: spans.length > ctx.session.model.maxTokens ? `longer than the model's prompt limit of ${ctx.session.model.maxTokens} tokens` : undefined,
      tokens: spans.map((s, position) => ({ position, id: s.id, text: tok.tokenString(s.id), start: s.start, end: s.end })),
    };
  },
});

const generateInput = z.object({
  prompt: z.string().min(1).max(LIMITS.maxStringChars).describe('the prompt; with harmony: true, the user message'),
  maxNewTokens: z.number().int().min(1).max(LIMITS.maxNewTokens).default(32),
  temperature: z.number().min(0).max(10).default(0).describe('0 = greedy'),
  topP: z.number().gt(0).max(1).default(1).describe('nucleus sampling mass (with temperature > 0)'),
  seed: z.number().int().min(0).max(2 ** 31 - 1).default(0).describe('sampling seed (same seed, same text)'),
  harmony: z.boolean().default(false).describe('wrap the prompt as a harmony conversation (system, optional developer, user; then <|start|>assistant) and parse the reply into messages; needs a gpt-oss o200k_harmony tokenizer'),
  instructions: z.string().max(LIMITS.maxStringChars).optional().describe('harmony only: developer instructions'),
  reasoningEffort: z.enum(['low', 'medium', 'high']).default('low').describe('harmony only: reasoning effort in the system message'),
  stop: z.array(z.string().min(1)).max(64).optional().describe('tokens that end generation (each one token); default: the model\'s end-of-text tokens (harmony: <|return|>, <|call|>)'),
}).strict();

export const generateTool = defineTool({
  name: 'generate',
  description:
    'Generate a continuation with the loaded model (greedy by default, or sampled with temperature/topP/seed). With harmony: true the prompt ' +
    'becomes a user turn in the gpt-oss harmony chat format and the reply comes back parsed into analysis/final messages. ' +
    'The prompt plus completion is stored as a run (runId). Example: {"prompt": "When Mary and John went to the store , John gave a drink to", "maxNewTokens": 5}',
  readsText: true,
  limits: { prompts: ['prompt'] },
  input: generateInput.meta({
    examples: [
      { prompt: 'When Mary and John went to the store , John gave a drink to', maxNewTokens: 5 },
      { prompt: 'What is 2 + 2?', harmony: true, maxNewTokens: 64, temperature: 0.7, seed: 1 },
    ],
  }),
  output: z.object({
    runId: z.string(),
    promptTokens: z.number().int(),
    completion: z.string(),
    stoppedBy: z.enum(['stop', 'length']),
    newTokens: z.array(z.object({ id: z.number().int(), text: z.string(), logprob: z.number() })),
    meanLogprob: z.number().nullable(),
    messages: z.array(z.object({
      role: z.enum(['system', 'developer', 'user', 'assistant', 'tool']), content: z.string(),
      channel: z.enum(['analysis', 'commentary', 'final']).optional(), recipient: z.string().optional(),
      contentType: z.string().optional(), name: z.string().optional(),
    })).optional().describe('harmony: the reply parsed into messages'),
    final: z.string().optional().describe('harmony: the final channel\'s text'),
    parseError: z.string().optional(),
    note: z.string().optional(),
  }),
  async run(input, ctx: ToolContext) {
    const s = ctx.session;
    const tok = s.tokenizer;
    let promptText = input.prompt;
    let stop: number[] | undefined;
    if (input.harmony) {
      if (!supportsHarmony(s)) {
        throw new ToolError(`harmony: true needs a gpt-oss tokenizer with the harmony markers (<|start|>, <|message|>); ${s.modelId} has a ${tok.vocabSize}-token vocabulary without them. Call generate without harmony.`);
      }
      const messages: HarmonyMessage[] = [systemMessage({ reasoningEffort: input.reasoningEffort })];
      if (input.instructions) messages.push(developerMessage(input.instructions));
      messages.push({ role: 'user', content: input.prompt });
      promptText = renderConversation(messages);
      stop = stopTokenIds(tok);
    } else if (input.instructions) {
      throw new ToolError('instructions are for harmony: true only');
    }
    if (input.stop) stop = input.stop.map((w) => s.tokenId(w, 'stop token'));
    // The caller's text is checked against the vocabulary; the harmony template around it is the tokenizer's own.
    s.checkVocabulary(input.prompt, 'prompt');
    if (input.instructions) s.checkVocabulary(input.instructions, 'instructions');
    const encoded = s.encode(promptText, { checked: true });
    const room = s.model.maxTokens - encoded.ids.length;
    if (room < 1) throw new ToolError(`the prompt has ${encoded.ids.length} tokens, which leaves no room under the model's limit of ${s.model.maxTokens}`);
    const maxNew = Math.min(input.maxNewTokens, room);
    const [g] = await generate(s.model, [encoded.ids], {
      maxNewTokens: maxNew, temperature: input.temperature, topP: input.topP, seed: input.seed, stopTokens: stop,
      signal: ctx.signal,
      onStep: (step, total) => ctx.onProgress?.({ done: step, total, message: `token ${step}/${total}` }),
    });
    const completion = g.tokens.length ? tok.decode(g.tokens) : '';
    const allIds = [...encoded.ids, ...g.tokens];
    const runId = await ctx.store.addRun({
      modelId: s.modelId, prompt: promptText, tokenIds: allIds, tokens: allIds.map((id) => tok.tokenString(id)),
      meta: { tool: 'generate', promptTokens: encoded.ids.length, temperature: input.temperature, topP: input.topP, seed: input.seed, harmony: input.harmony },
    });
    let messages: HarmonyMessage[] | undefined;
    let parseError: string | undefined;
    if (input.harmony) {
      try {
        messages = parseCompletion(completion);
      } catch (e) {
        parseError = (e as Error).message;
      }
    }
    const meanLogprob = g.logprobs.length ? g.logprobs.reduce((a, b) => a + b, 0) / g.logprobs.length : null;
    return {
      runId,
      promptTokens: encoded.ids.length,
      completion,
      stoppedBy: g.stoppedBy,
      newTokens: g.tokens.map((id, i) => ({ id, text: tok.tokenString(id), logprob: g.logprobs[i] })),
      meanLogprob,
      ...(input.harmony ? { messages, final: messages?.filter((m) => m.channel === 'final').map((m) => m.content).join('\n'), parseError } : {}),
      ...(maxNew < input.maxNewTokens ? { note: `maxNewTokens cut to ${maxNew} by the model's ${s.model.maxTokens}-token limit` } : {}),
    };
  },
});

export const MODEL_TOOLS = [modelInfoTool, loadModelTool, listHooksTool, tokenizeTool, generateTool];
