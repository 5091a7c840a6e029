import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { Tokenizer, TokenizerError, wordLevelTokenizerJson } from '../../engine/tokenizer.ts';
import { GPTOSS_TOKENIZER_JSON } from '../helpers/gptossTokenizer.ts';

describe('o200k_harmony (real tokenizer.json)', () => {
  let tok: Tokenizer;
  beforeAll(() => {
    tok = Tokenizer.fromFile(GPTOSS_TOKENIZER_JSON); // ~3 s: load once
  });

  it('matches the reference ids', () => {
    expect(tok.encode('hello world')).toEqual([24912, 2375]);
    expect(tok.encode('<|start|>user<|message|>Hello<|end|>')).toEqual([200006, 1428, 200008, 13225, 200007]);
    expect(tok.encode('assistant')).toEqual([173781]);
    expect(tok.encode('analysis')).toEqual([35644]);
    expect(tok.encode('final')).toEqual([17196]);
    expect(tok.encode('')).toEqual([]);
  });

  it('knows the harmony specials', () => {
    const specials = tok.specialTokenIds();
    const expected: Record<string, number> = {
      '<|startoftext|>': 199998,
      '<|endoftext|>': 199999,
      '<|return|>': 200002,
      '<|constrain|>': 200003,
      '<|channel|>': 200005,
      '<|start|>': 200006,
      '<|end|>': 200007,
      '<|message|>': 200008,
      '<|call|>': 200012,
    };
    for (const [s, id] of Object.entries(expected)) {
      expect(specials.get(s)).toBe(id);
      expect(tok.tokenId(s)).toBe(id);
      expect(tok.tokenString(id)).toBe(s);
    }
    expect(tok.vocabSize).toBe(200019); // tokenizer.json defines ids up to <|endofprompt|> 200018
  });

  it('decodes back to the input, specials and multi-byte text included', () => {
    for (const s of ['hello world', "Hello, world's héllo 日本語 🙂  x\n\ty", '<|start|>user<|message|>Hi<|end|>', 'a🦜b ꙮ']) {
      expect(tok.decode(tok.encode(s))).toBe(s);
    }
    expect(tok.decode([])).toBe('');
  });

  it('gives character offsets for a plain sentence', () => {
    const text = 'The cat sat on the mat.';
    const spans = tok.encodeWithOffsets(text);
    expect(spans.map((s) => s.id)).toEqual(tok.encode(text));
    expect(spans.map((s) => s.text)).toEqual(['The', ' cat', ' sat', ' on', ' the', ' mat', '.']);
    for (const s of spans) expect(text.slice(s.start, s.end)).toBe(s.text);
    expect(spans.at(-1)!.end).toBe(text.length);
  });

  it('offsets around specials and split characters', () => {
    const text = 'x<|end|> 🦜';
    const spans = tok.encodeWithOffsets(text);
    expect(spans[0]).toMatchObject({ text: 'x', start: 0, end: 1 });
    expect(spans[1]).toMatchObject({ id: 200007, start: 1, end: 8 });
    // the parrot (UTF-16 9..11) is split over byte tokens: each covers the whole character
    const parts = spans.slice(2);
    expect(parts.length).toBeGreaterThan(1);
    for (const s of parts) expect(s.start <= 9 && s.end === 11).toBe(true);
    expect(spans.at(-1)!.end).toBe(text.length);
  });

  it('token strings and lookups', () => {
    expect(tok.tokenString(2375)).toBe(' world');
    expect(tok.tokenId(' world')).toBe(2375);
    expect(tok.tokenId('Ġworld')).toBe(2375); // raw vocabulary form
    expect(tok.tokenId('assistant')).toBe(173781);
    expect(tok.tokenId('definitely not one token')).toBeUndefined();
    // a token holding part of a character shows its bytes and still looks up
    const parts = tok.encode('🦜');
    const strings = parts.map((id) => tok.tokenString(id));
    expect(strings.join('')).toMatch(/^(<0x[0-9A-F]{2}>)+$/);
    expect(strings.map((s) => tok.tokenId(s))).toEqual(parts);
  });

  it('reads ids the model has but tokenizer.json lacks (200019..201087) as placeholders; refuses non-ids', () => {
    expect(tok.has(200018)).toBe(true);
    expect(tok.has(200019)).toBe(false);
    expect(tok.tokenString(201000)).toBe('<|unmapped:201000|>');
    const hello = tok.encode('Hello world');
    expect(tok.decode([...hello, 200271, ...hello])).toBe('Hello world<|unmapped:200271|>Hello world');
    expect(() => tok.decode([1, -1])).toThrow(/token id -1 is not a non-negative integer/);
    expect(() => tok.decode([1.5])).toThrow(TokenizerError);
  });

  it('shares one instance per file', () => {
    expect(Tokenizer.fromFile(GPTOSS_TOKENIZER_JSON)).toBe(tok);
  });
});

describe('word-level tokenizer', () => {
  const words = ['the', 'cat', 'sat', 'on', 'mat', ',', '.', '3', '4'];
  const tok = Tokenizer.fromJSON(wordLevelTokenizerJson(words, ['<unk>', '<|start|>', '<|end|>']));

  it('assigns ids in order, specials first', () => {
    expect(tok.vocabSize).toBe(12);
    expect(tok.tokenId('<unk>')).toBe(0);
    expect(tok.tokenId('the')).toBe(3);
    expect(tok.tokenId('4')).toBe(11);
    expect(tok.tokenString(4)).toBe('cat');
    expect([...tok.specialTokenIds()]).toEqual([
      ['<unk>', 0],
      ['<|start|>', 1],
      ['<|end|>', 2],
    ]);
  });

  it('encodes space-separated words and decodes with single spaces', () => {
    const ids = tok.encode('the cat sat on the mat .');
    expect(ids).toEqual([3, 4, 5, 6, 3, 7, 9]);
    expect(tok.decode(ids)).toBe('the cat sat on the mat .');
    expect(tok.encode('<|start|>3 4<|end|>')).toEqual([1, 10, 11, 2]);
    expect(tok.encode('the cat,sat.')).toEqual([3, 4, 8, 5, 9]); // punctuation splits off
  });

  it('maps unknown words to <unk> and spans them', () => {
    const text = 'the  dog sat';
    expect(tok.encode(text)).toEqual([3, 0, 5]);
    const spans = tok.encodeWithOffsets(text);
    expect(spans.map((s) => [s.text, text.slice(s.start, s.end)])).toEqual([
      ['the', 'the'],
      ['<unk>', 'dog'],
      ['sat', 'sat'],
    ]);
    expect(spans.map((s) => [s.start, s.end])).toEqual([
      [0, 3],
      [5, 8],
      [9, 12],
    ]);
    expect(tok.tokenId('dog')).toBeUndefined();
  });

  it('supports [UNK] and rejects bad vocabularies', () => {
    const t = Tokenizer.fromJSON(wordLevelTokenizerJson(['[UNK]', 'a'], []));
    expect(t.encode('a b')).toEqual([1, 0]);
    expect(() => wordLevelTokenizerJson(['a'], [])).toThrow(/unknown token/);
    expect(() => wordLevelTokenizerJson(['a', 'a'], ['<unk>'])).toThrow(/duplicate/);
    expect(() => wordLevelTokenizerJson(['a+b'], ['<unk>'])).toThrow(/pre-token/);
  });

  it('reads ids beyond its vocabulary as placeholders', () => {
    expect(tok.decode([12])).toBe('<|unmapped:12|>');
  });
});

describe('loading errors', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tok-'));

  it('names a missing file', () => {
    expect(() => Tokenizer.fromFile(join(dir, 'nope.json'))).toThrow(/tokenizer file not found: .*nope\.json/);
  });

  it('rejects invalid JSON and non-tokenizer JSON', () => {
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '{ not json');
    expect(() => Tokenizer.fromFile(bad)).toThrow(/not valid JSON/);
    const other = join(dir, 'other.json');
    writeFileSync(other, '{"hello": 1}');
    expect(() => Tokenizer.fromFile(other)).toThrow(TokenizerError);
    expect(() => Tokenizer.fromJSON([])).toThrow(TokenizerError);
  });
});
