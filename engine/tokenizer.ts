// Tokenizer: a thin wrapper over @huggingface/tokenizers (pure JS, loads tokenizer.json offline).
// BPE itself stays in the library; this module adds what the research tools need on top:
// strict id checks, readable per-token strings, character offsets, and word-level vocabularies.
import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';

export class TokenizerError extends Error {
  override name = 'TokenizerError';
}

export interface TokenSpan {
  id: number;
  /** Decoded text of this single token (may hold U+FFFD when a byte-level token splits a character). */
  text: string;
  /** Character (UTF-16) offsets into the input: exact for word-level and whole-character tokens;
   *  a token holding part of a multi-byte character covers that whole character. */
  start: number;
  end: number;
}

type Json = Record<string, unknown>;
interface AddedTokenInfo {
  content: string;
  special: boolean;
}

// tokenizer.json files are large (o200k_harmony: 28 MB, ~3 s to load); instances are immutable,
// so one per file (same path, size and mtime) is shared by every caller in the process.
const fileCache = new Map<string, { key: string; tok: Tokenizer }>();

export class Tokenizer {
  readonly vocabSize: number;
  private readonly hf: HfTokenizer;
  private readonly byteLevel: boolean;
  private readonly vocab: string[];
  private readonly added = new Map<number, AddedTokenInfo>();
  private readonly addedByContent = new Map<string, number>();
  private readonly unkId: number | undefined;

  private constructor(json: Json) {
    const model = json.model as Json | undefined;
    if (!model || typeof model !== 'object' || !model.vocab || typeof model.vocab !== 'object') {
      throw new TokenizerError('tokenizer.json has no model.vocab: not a Hugging Face tokenizer.json');
    }
    // The library has no WordLevel case: it routes a vocab-only model to its "Legacy" model, which is
    // word-level (one vocab lookup per pre-token) but takes its unknown token from the second
    // (tokenizer_config) argument, so pass the model's own unk_token there.
    const config: Json = { clean_up_tokenization_spaces: false };
    if (typeof model.unk_token === 'string') config.unk_token = model.unk_token;
    const full = { normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null, added_tokens: [], ...json };
    try {
      this.hf = new HfTokenizer(full, config);
    } catch (e) {
      throw new TokenizerError(`cannot build tokenizer from tokenizer.json: ${(e as Error).message}`);
    }
    const hfModel = this.hf.model;
    if (!hfModel) throw new TokenizerError('tokenizer.json model could not be constructed');
    this.vocab = hfModel.vocab;
    this.vocabSize = this.vocab.length;
    this.unkId = hfModel.unk_token_id;
    for (const [id, t] of this.hf.get_added_tokens_decoder()) {
      this.added.set(id, { content: t.content, special: t.special });
      this.addedByContent.set(t.content, id);
    }
    this.byteLevel = mentionsByteLevel(json.decoder) || mentionsByteLevel(json.pre_tokenizer);
  }

  static fromFile(path: string): Tokenizer {
    if (!existsSync(path)) throw new TokenizerError(`tokenizer file not found: ${path}`);
    const real = realpathSync(path);
    const st = statSync(real);
    if (!st.isFile()) throw new TokenizerError(`tokenizer path is not a file: ${path}`);
    const key = `${st.size}:${st.mtimeMs}`;
    const hit = fileCache.get(real);
    if (hit && hit.key === key) return hit.tok;
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(real, 'utf8'));
    } catch (e) {
      throw new TokenizerError(`tokenizer file ${path} is not valid JSON: ${(e as Error).message}`);
    }
    let tok: Tokenizer;
    try {
      tok = Tokenizer.fromJSON(json as object);
    } catch (e) {
      throw new TokenizerError(`${path}: ${(e as Error).message}`);
    }
    fileCache.set(real, { key, tok });
    return tok;
  }

  static fromJSON(json: object): Tokenizer {
    if (!json || typeof json !== 'object' || Array.isArray(json)) {
      throw new TokenizerError('tokenizer JSON must be an object');
    }
    return new Tokenizer(json as Json);
  }

  /** Token ids of text, no BOS/EOS added; special tokens written in the text are recognised. */
  encode(text: string): number[] {
    return this.encodeRaw(text).ids;
  }

  encodeWithOffsets(text: string): TokenSpan[] {
    const { ids, tokens } = this.encodeRaw(text);
    const offsets =
      (this.byteLevel ? this.byteLevelOffsets(text, ids, tokens) : null) ?? this.searchOffsets(text, ids);
    return ids.map((id, i) => ({ id, text: this.decode([id]), start: offsets[i][0], end: offsets[i][1] }));
  }

  /**
   * Text of a token sequence. Ids the tokenizer has no token for (gpt-oss's embedding has 201088
   * rows, its tokenizer.json ~200k tokens, and a model can emit the unused rows) read as
   * `<|unmapped:ID|>` between the decoded stretches around them.
   */
  decode(ids: number[]): string {
    let out = '';
    let run: number[] = [];
    const flush = () => {
      if (run.length) out += this.hf.decode(run, { clean_up_tokenization_spaces: false }); // the library throws on an empty list
      run = [];
    };
    for (const id of ids) {
      this.checkIdShape(id);
      if (this.has(id)) run.push(id);
      else {
        flush();
        out += unmapped(id);
      }
    }
    flush();
    return out;
  }

  /** Whether the tokenizer has a token for this id. */
  /** The id text outside the vocabulary becomes (word-level vocabularies), or undefined when there is none (byte-level BPE). */
  get unknownId(): number | undefined {
    return this.unkId;
  }

  /** The vocabulary's entries as readable strings (for suggesting words), special tokens left out. */
  words(): string[] {
    return this.vocab.flatMap((_, id) => (this.added.has(id) || id === this.unkId ? [] : [this.tokenString(id)]));
  }

  has(id: number): boolean {
    return Number.isInteger(id) && id >= 0 && id < this.vocabSize && this.vocab[id] !== undefined;
  }

  /** Readable text of one token for tables and heatmaps: its decoded text, except that bytes which are
   *  not valid UTF-8 on their own (a byte-level token holding part of a character) show as `<0xNN>`. */
  tokenString(id: number): string {
    this.checkIdShape(id);
    if (!this.has(id)) return unmapped(id);
    const added = this.added.get(id);
    if (added) return added.content;
    if (this.byteLevel) return readableUtf8(byteLevelToBytes(this.vocab[id]));
    return this.hf.decode([id], { clean_up_tokenization_spaces: false });
  }

  /** Exact lookup of a special/added token, a token's readable text as tokenString prints it
   *  (" world", "<0xF0><0x9F>") or a raw vocabulary string ("Ġworld"). Undefined when not one token. */
  tokenId(token: string): number | undefined {
    const added = this.addedByContent.get(token);
    if (added !== undefined) return added;
    if (this.byteLevel) {
      const id = this.hf.token_to_id(bytesToByteLevel(readableToBytes(token)));
      if (id !== undefined) return id;
    }
    return this.hf.token_to_id(token);
  }

  specialTokenIds(): Map<string, number> {
    const out = new Map<string, number>();
    for (const [id, t] of this.added) if (t.special) out.set(t.content, id);
    return out;
  }

  private encodeRaw(text: string): { ids: number[]; tokens: string[] } {
    if (typeof text !== 'string') throw new TokenizerError('encode expects a string');
    const { ids, tokens } = this.hf.encode(text, { add_special_tokens: false });
    const bad = ids.findIndex((id: number | undefined) => id === undefined);
    if (bad >= 0) {
      throw new TokenizerError(`"${tokens[bad]}" is not in the vocabulary and the tokenizer has no unknown token`);
    }
    return { ids, tokens };
  }

  // Ids beyond the tokenizer are the model's to judge (its vocab_size); only non-ids are refused here.
  private checkIdShape(id: number): void {
    if (!Number.isInteger(id) || id < 0) throw new TokenizerError(`token id ${id} is not a non-negative integer`);
  }

  // Byte-level BPE: tokens concatenate to the input's UTF-8 bytes, so offsets are exact up to
  // characters split across tokens. Returns null if the bytes do not line up (e.g. a normalizer).
  private byteLevelOffsets(text: string, ids: number[], tokens: string[]): Array<[number, number]> | null {
    const enc = new TextEncoder();
    const bytes = enc.encode(text);
    const { startOf, endOf } = byteToCharMaps(text, bytes.length);
    const out: Array<[number, number]> = [];
    let b = 0;
    for (let i = 0; i < ids.length; i++) {
      const added = this.added.get(ids[i]);
      let tb: Uint8Array;
      if (added) {
        // Added tokens may strip neighbouring whitespace (lstrip/rstrip): find them instead.
        const at = text.indexOf(added.content, b < bytes.length ? startOf[b] : text.length);
        if (at < 0) return null;
        b = enc.encode(text.slice(0, at)).length;
        tb = enc.encode(added.content);
      } else {
        tb = byteLevelToBytes(tokens[i]);
      }
      if (b + tb.length > bytes.length) return null;
      for (let k = 0; k < tb.length; k++) if (bytes[b + k] !== tb[k]) return null;
      out.push(tb.length === 0 ? [startOf[b], startOf[b]] : [startOf[b], endOf[b + tb.length - 1]]);
      b += tb.length;
    }
    return out;
  }

  // Other models (word-level): find each token's text after the previous one; an unknown token
  // covers the next pre-token (the word it replaced); anything unfound gets an empty span.
  private searchOffsets(text: string, ids: number[]): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    let cursor = 0;
    for (const id of ids) {
      let span: [number, number] | null = null;
      const surface = this.added.get(id)?.content ?? this.hf.decode([id], { clean_up_tokenization_spaces: false }).trim();
      const at = surface ? text.indexOf(surface, cursor) : -1;
      if (at >= 0) span = [at, at + surface.length];
      if (id === this.unkId) {
        // The unknown token stands for a word; prefer it unless "<unk>" itself was typed first.
        const word = this.nextPreToken(text, cursor);
        if (word && (!span || word[0] < span[0])) span = word;
      }
      span ??= [cursor, cursor];
      out.push(span);
      cursor = span[1];
    }
    return out;
  }

  private nextPreToken(text: string, cursor: number): [number, number] | null {
    const rest = text.slice(cursor);
    const pre = this.hf.pre_tokenizer;
    const first = pre ? pre.pre_tokenize(rest)[0] : rest.match(/\S+/)?.[0];
    if (!first) return null;
    const at = rest.indexOf(first);
    return at < 0 ? null : [cursor + at, cursor + at + first.length];
  }
}

/** A WordLevel tokenizer.json (Whitespace pre-tokenizer) for space-separated vocabulary words.
 *  Ids: specials first in the order given, then vocab in the order given. The unknown token is
 *  `[UNK]` or `<unk>`, whichever of them is listed (required). */
export function wordLevelTokenizerJson(vocab: string[], specials: string[]): object {
  const all = [...specials, ...vocab];
  const ids: Record<string, number> = {};
  all.forEach((w, i) => {
    if (w.length === 0) throw new TokenizerError('empty string in word-level vocabulary');
    if (Object.hasOwn(ids, w)) throw new TokenizerError(`duplicate word-level token "${w}"`);
    ids[w] = i;
  });
  // The Whitespace pre-tokenizer splits text into \w+ and [^\w\s]+ runs; a vocab word that is not
  // one such run could never be produced, so reject it early.
  const bad = vocab.find((w) => !/^(?:\w+|[^\w\s]+)$/.test(w) && w !== '[UNK]' && w !== '<unk>');
  if (bad !== undefined) {
    throw new TokenizerError(`word-level token "${bad}" is not a single Whitespace pre-token (\\w+ or [^\\w\\s]+)`);
  }
  const unk = ['[UNK]', '<unk>'].find((u) => Object.hasOwn(ids, u));
  if (!unk) throw new TokenizerError('word-level vocabulary needs an unknown token: list "[UNK]" or "<unk>"');
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specials.map((content) => ({
      id: ids[content],
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: { type: 'Whitespace' },
    post_processor: null,
    decoder: null, // decode joins tokens with single spaces
    model: { type: 'WordLevel', vocab: ids, unk_token: unk },
  };
}

function mentionsByteLevel(component: unknown): boolean {
  if (!component || typeof component !== 'object') return false;
  const c = component as Json;
  if (c.type === 'ByteLevel') return true;
  const parts = (c.pretokenizers ?? c.decoders) as unknown;
  return Array.isArray(parts) && parts.some(mentionsByteLevel);
}

// GPT-2's byte <-> printable-character table used by byte-level BPE vocabularies.
const BYTE_TO_CHAR: string[] = [];
const CHAR_TO_BYTE = new Map<string, number>();
{
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    const ch = String.fromCharCode(printable ? b : 256 + extra++);
    BYTE_TO_CHAR[b] = ch;
    CHAR_TO_BYTE.set(ch, b);
  }
}

function byteLevelToBytes(token: string): Uint8Array {
  const out: number[] = [];
  for (const ch of token) {
    const b = CHAR_TO_BYTE.get(ch);
    if (b !== undefined) out.push(b);
    else out.push(...new TextEncoder().encode(ch)); // not in the byte alphabet: take it literally
  }
  return Uint8Array.from(out);
}

function bytesToByteLevel(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += BYTE_TO_CHAR[b];
  return s;
}

/** Inverse of readableUtf8: UTF-8 bytes of text, with each `<0xNN>` read as that single byte. */
function readableToBytes(text: string): Uint8Array {
  const enc = new TextEncoder();
  const out: number[] = [];
  let last = 0;
  for (const m of text.matchAll(/<0x([0-9A-F]{2})>/g)) {
    out.push(...enc.encode(text.slice(last, m.index)), parseInt(m[1], 16));
    last = m.index + m[0].length;
  }
  out.push(...enc.encode(text.slice(last)));
  return Uint8Array.from(out);
}

/** For each UTF-8 byte of text: the UTF-16 start and end of the character that holds it. */
function byteToCharMaps(text: string, nBytes: number): { startOf: Int32Array; endOf: Int32Array } {
  const startOf = new Int32Array(nBytes + 1);
  const endOf = new Int32Array(nBytes + 1);
  let b = 0;
  let i = 0;
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    const n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4; // lone surrogates encode as 3 (U+FFFD)
    for (let k = 0; k < n; k++) {
      startOf[b + k] = i;
      endOf[b + k] = i + ch.length;
    }
    b += n;
    i += ch.length;
  }
  startOf[nBytes] = endOf[nBytes] = text.length;
  return { startOf, endOf };
}

const utf8Fatal = new TextDecoder('utf-8', { fatal: true });

/** UTF-8 text of bytes, with every byte that is not part of a valid sequence shown as <0xNN>. */
function readableUtf8(bytes: Uint8Array): string {
  try {
    return utf8Fatal.decode(bytes);
  } catch {
    let out = '';
    let i = 0;
    while (i < bytes.length) {
      const n = validSequenceLength(bytes, i);
      if (n > 0) {
        out += utf8Fatal.decode(bytes.subarray(i, i + n));
        i += n;
      } else {
        out += `<0x${bytes[i].toString(16).toUpperCase().padStart(2, '0')}>`;
        i += 1;
      }
    }
    return out;
  }
}

/** Length of the well-formed UTF-8 sequence starting at i, or 0 (per the Unicode table of
 *  well-formed byte sequences: no overlongs, no surrogates, nothing above U+10FFFF). */
function validSequenceLength(b: Uint8Array, i: number): number {
  const x = b[i];
  if (x < 0x80) return 1;
  let n: number;
  let lo = 0x80;
  let hi = 0xbf;
  if (x >= 0xc2 && x <= 0xdf) n = 2;
  else if (x >= 0xe0 && x <= 0xef) {
    n = 3;
    if (x === 0xe0) lo = 0xa0;
    if (x === 0xed) hi = 0x9f;
  } else if (x >= 0xf0 && x <= 0xf4) {
    n = 4;
    if (x === 0xf0) lo = 0x90;
    if (x === 0xf4) hi = 0x8f;
  } else return 0;
  if (i + n > b.length) return 0;
  if (b[i + 1] < lo || b[i + 1] > hi) return 0;
  for (let k = 2; k < n; k++) if (b[i + k] < 0x80 || b[i + k] > 0xbf) return 0;
  return n;
}

/** How an id without a token in tokenizer.json reads. */
const unmapped = (id: number) => `<|unmapped:${id}|>`;
