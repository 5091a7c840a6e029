import { beforeAll, describe, expect, it } from 'vitest';
import {
  HARMONY_STOP_TOKENS,
  HarmonyParseError,
  parseCompletion,
  renderConversation,
  stopTokenIds,
  systemMessage,
} from '../../engine/harmony.ts';
import { Tokenizer, wordLevelTokenizerJson } from '../../engine/tokenizer.ts';
import { GPTOSS_TOKENIZER_JSON } from '../helpers/gptossTokenizer.ts';

const SYSTEM =
  'You are ChatGPT, a large language model trained by OpenAI.\nKnowledge cutoff: 2024-06\n\nReasoning: medium\n\n' +
  '# Valid channels: analysis, commentary, final. Channel must be included for every message.';

describe('rendering', () => {
  it('writes the standard system message', () => {
    expect(systemMessage()).toEqual({ role: 'system', content: SYSTEM });
    expect(systemMessage({ reasoningEffort: 'high', currentDate: '2025-08-05' }).content).toBe(
      'You are ChatGPT, a large language model trained by OpenAI.\nKnowledge cutoff: 2024-06\nCurrent date: 2025-08-05\n\n' +
        'Reasoning: high\n\n# Valid channels: analysis, commentary, final. Channel must be included for every message.',
    );
  });

  it('renders system + user with a generation prompt', () => {
    const text = renderConversation([systemMessage(), { role: 'user', content: 'What is 2 + 2?' }]);
    expect(text).toBe(`<|start|>system<|message|>${SYSTEM}<|end|><|start|>user<|message|>What is 2 + 2?<|end|><|start|>assistant`);
    expect(renderConversation([{ role: 'user', content: 'hi' }], { addGenerationPrompt: false })).toBe(
      '<|start|>user<|message|>hi<|end|>',
    );
  });

  it('renders assistant channels, tool calls and <|return|> on request', () => {
    const msgs = [
      { role: 'user', content: 'Hi' },
      { role: 'assistant', channel: 'analysis', content: 'Greet.' },
      { role: 'assistant', channel: 'final', content: 'Hello!' },
    ] as const;
    expect(renderConversation([...msgs], { addGenerationPrompt: false })).toBe(
      '<|start|>user<|message|>Hi<|end|><|start|>assistant<|channel|>analysis<|message|>Greet.<|end|>' +
        '<|start|>assistant<|channel|>final<|message|>Hello!<|end|>',
    );
    expect(renderConversation([...msgs], { finalReturn: true }).endsWith('<|message|>Hello!<|return|>')).toBe(true);
    expect(
      renderConversation(
        [
          { role: 'assistant', channel: 'commentary', recipient: 'functions.f', contentType: '<|constrain|>json', content: '{}' },
          { role: 'tool', name: 'functions.f', recipient: 'assistant', channel: 'commentary', content: '42' },
        ],
        { addGenerationPrompt: false },
      ),
    ).toBe(
      '<|start|>assistant to=functions.f<|channel|>commentary <|constrain|>json<|message|>{}<|call|>' +
        '<|start|>functions.f to=assistant<|channel|>commentary<|message|>42<|end|>',
    );
  });
});

describe('parseCompletion', () => {
  it('splits analysis and final channels', () => {
    const out = parseCompletion(
      '<|channel|>analysis<|message|>User asks 2+2. Answer 4.<|end|><|start|>assistant<|channel|>final<|message|>2 + 2 = 4.<|return|>',
    );
    expect(out).toEqual([
      { role: 'assistant', channel: 'analysis', content: 'User asks 2+2. Answer 4.' },
      { role: 'assistant', channel: 'final', content: '2 + 2 = 4.' },
    ]);
  });

  it('tolerates a missing stop and a cut-off header', () => {
    expect(parseCompletion('<|channel|>analysis<|message|>thinking about')).toEqual([
      { role: 'assistant', channel: 'analysis', content: 'thinking about' },
    ]);
    expect(parseCompletion('<|channel|>analysis<|message|>ok<|end|><|start|>assistant<|channel|>fin')).toEqual([
      { role: 'assistant', channel: 'analysis', content: 'ok' },
    ]);
    expect(parseCompletion('<|start|>assistant<|channel|>final<|message|>A')).toEqual([
      { role: 'assistant', channel: 'final', content: 'A' },
    ]);
    expect(parseCompletion('')).toEqual([]);
  });

  it('parses a tool call and round-trips a rendered one', () => {
    const call = '<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city":"Paris"}<|call|>';
    const [m] = parseCompletion(call);
    expect(m).toEqual({
      role: 'assistant',
      channel: 'commentary',
      recipient: 'functions.get_weather',
      contentType: '<|constrain|>json',
      content: '{"city":"Paris"}',
    });
    const rendered = renderConversation([m], { addGenerationPrompt: false });
    expect(parseCompletion(rendered)).toEqual([m]);
  });

  it('rejects unknown channels', () => {
    expect(() => parseCompletion('<|channel|>banter<|message|>x<|end|>')).toThrow(HarmonyParseError);
  });
});

describe('with the real o200k_harmony tokenizer', () => {
  let tok: Tokenizer;
  beforeAll(() => {
    tok = Tokenizer.fromFile(GPTOSS_TOKENIZER_JSON); // ~3 s: load once
  });

  it('tokenises a rendered conversation to the expected special ids', () => {
    const ids = tok.encode(renderConversation([systemMessage(), { role: 'user', content: 'What is 2 + 2?' }]));
    const system = tok.encode(SYSTEM);
    const user = tok.encode('What is 2 + 2?');
    expect(ids).toEqual([
      200006, tok.tokenId('system'), 200008, ...system, 200007,
      200006, 1428, 200008, ...user, 200007,
      200006, 173781,
    ]);
    expect(tok.decode(ids)).toBe(renderConversation([systemMessage(), { role: 'user', content: 'What is 2 + 2?' }]));
  });

  it('stop tokens', () => {
    expect(HARMONY_STOP_TOKENS).toEqual(['<|return|>', '<|call|>']);
    expect(stopTokenIds(tok)).toEqual([200002, 200012]);
  });

  it('parses decoded generated ids', () => {
    const gen = [200005, 35644, 200008, ...tok.encode('Easy.'), 200007, 200006, 173781, 200005, 17196, 200008, ...tok.encode('4'), 200002];
    expect(parseCompletion(tok.decode(gen))).toEqual([
      { role: 'assistant', channel: 'analysis', content: 'Easy.' },
      { role: 'assistant', channel: 'final', content: '4' },
    ]);
  });
});

it('stop tokens of a word-level vocabulary are those it has', () => {
  expect(stopTokenIds(Tokenizer.fromJSON(wordLevelTokenizerJson(['a'], ['<unk>'])))).toEqual([]);
  expect(stopTokenIds(Tokenizer.fromJSON(wordLevelTokenizerJson(['a'], ['<unk>', '<|call|>'])))).toEqual([1]);
});
