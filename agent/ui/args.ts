// Slash-command arguments: `key=value` pairs and positional words. Values may be quoted
// ("two words", 'x'), JSON ([0,1], {"a":1}), numbers, booleans, or comma lists (0,1,2 / L3.H0,L3.H1).

export class ArgError extends Error {}

export interface ParsedArgs {
  named: Record<string, unknown>;
  positional: string[];
}

/** Splits on spaces outside quotes and brackets. */
export function tokenize(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quote: string | null = null;
  let depth = 0;
  let started = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (quote) {
      if (c === '\\' && (s[i + 1] === quote || s[i + 1] === '\\')) {
        cur += c + s[i + 1];
        i++;
        continue;
      }
      cur += c;
      if (c === quote) quote = null;
      continue;
    }
    if (c === '"' || c === "'") {
      quote = c;
      cur += c;
      started = true;
      continue;
    }
    if (c === '[' || c === '{') depth++;
    if ((c === ']' || c === '}') && depth > 0) depth--;
    if (/\s/.test(c) && depth === 0) {
      if (started) out.push(cur);
      cur = '';
      started = false;
      continue;
    }
    cur += c;
    started = true;
  }
  if (quote) throw new ArgError(`unclosed ${quote} in: ${s}`);
  if (depth > 0) throw new ArgError(`unclosed bracket in: ${s}`);
  if (started) out.push(cur);
  return out;
}

function unquote(s: string): string {
  const q = s[0];
  return s.slice(1, -1).replace(new RegExp(`\\\\([${q}\\\\])`, 'g'), '$1');
}

const isQuoted = (s: string) => s.length >= 2 && (s[0] === '"' || s[0] === "'") && s[s.length - 1] === s[0];

/** One value as text → JSON value. */
export function parseValue(raw: string, key = 'value'): unknown {
  const s = raw.trim();
  if (isQuoted(s)) return unquote(s);
  if (s.startsWith('[') || s.startsWith('{')) {
    try {
      return JSON.parse(s);
    } catch (e) {
      throw new ArgError(`${key}: ${s} is not valid JSON (${(e as Error).message}); write lists like ${key}=[0,1] or ${key}=0,1 and strings in double quotes`);
    }
  }
  if (s === 'true' || s === 'false') return s === 'true';
  if (/^-?\d+(\.\d+)?(e[-+]?\d+)?$/i.test(s)) return Number(s);
  if (s.includes(',')) return splitList(s).map((x) => parseValue(x, key));
  return s;
}

/** Splits a comma list, keeping quoted items whole. */
function splitList(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quote: string | null = null;
  for (const c of s) {
    if (quote) {
      cur += c;
      if (c === quote) quote = null;
    } else if (c === '"' || c === "'") {
      quote = c;
      cur += c;
    } else if (c === ',') {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out.map((x) => x.trim()).filter((x) => x !== '');
}

export function parseArgs(s: string): ParsedArgs {
  const named: Record<string, unknown> = {};
  const positional: string[] = [];
  for (const tok of tokenize(s)) {
    const m = /^([A-Za-z_][\w.-]*)=(.*)$/s.exec(tok);
    if (m) {
      if (m[2] === '') throw new ArgError(`${m[1]}= has no value; write ${m[1]}=VALUE (quote text with spaces: ${m[1]}="two words")`);
      if (m[1] in named) throw new ArgError(`${m[1]} is given twice`);
      named[m[1]] = parseValue(m[2], m[1]);
    } else positional.push(isQuoted(tok) ? unquote(tok) : tok);
  }
  return { named, positional };
}

/** A value that must be a list of strings: a single string becomes a one-item list. */
export function stringList(v: unknown, key: string): string[] {
  const arr = Array.isArray(v) ? v : [v];
  if (arr.length === 0 || arr.some((x) => typeof x !== 'string' && typeof x !== 'number')) throw new ArgError(`${key} must be text or a list of texts, e.g. ${key}="When Mary and John went to the store , John gave a drink to"`);
  return arr.map(String);
}

/** A value that must be a list of integers. */
export function intList(v: unknown, key: string): number[] {
  const arr = Array.isArray(v) ? v : [v];
  if (arr.length === 0 || arr.some((x) => typeof x !== 'number' || !Number.isInteger(x))) throw new ArgError(`${key} must be integers, e.g. ${key}=0,1 or ${key}=[0,1]`);
  return arr as number[];
}

export function int(v: unknown, key: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new ArgError(`${key} must be an integer, got ${JSON.stringify(v)}`);
  return v;
}

export function numList(v: unknown, key: string): number[] {
  const arr = Array.isArray(v) ? v : [v];
  if (arr.length === 0 || arr.some((x) => typeof x !== 'number' || !Number.isFinite(x))) throw new ArgError(`${key} must be numbers, e.g. ${key}=0,1,2`);
  return arr as number[];
}

/** Refuses keys a command does not know, naming the ones it does. */
export function checkKeys(cmd: string, named: Record<string, unknown>, known: readonly string[]): void {
  const bad = Object.keys(named).filter((k) => !known.includes(k));
  if (bad.length) throw new ArgError(`/${cmd} does not take ${bad.map((b) => `"${b}"`).join(', ')}; it takes: ${known.join(', ')} (see /help ${cmd})`);
}
