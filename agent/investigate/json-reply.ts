// Structured replies from a chat model without relying on a server feature (local servers differ in
// their support for JSON modes and forced tool choice): ask for a JSON object, read it leniently
// (code fences, text around it), and ask once more with the parse error when it cannot be read.
import type { ChatMessage, ChatModel, CompletionRequest } from '../llm/types.ts';

/** The first JSON object in a reply: the whole text, a fenced block, or the outermost braces. */
export function extractJsonObject(text: string): Record<string, unknown> {
  const candidates: string[] = [text.trim()];
  for (const m of text.matchAll(/```(?:json)?\s*\n?([\s\S]*?)```/g)) candidates.push(m[1].trim());
  const first = text.indexOf('{');
  const last = text.lastIndexOf('}');
  if (first >= 0 && last > first) candidates.push(text.slice(first, last + 1));
  let err: Error | null = null;
  for (const c of candidates) {
    try {
      const v = JSON.parse(c);
      if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
      err = new Error('the reply is JSON but not an object');
    } catch (e) {
      err = e as Error;
    }
  }
  throw new Error(first < 0 ? 'the reply holds no JSON object' : `the JSON object cannot be read (${err?.message})`);
}

export interface JsonReply {
  /** The object, or null when two replies could not be read (the caller falls back on `raw`). */
  value: Record<string, unknown> | null;
  raw: string;
  warnings: string[];
}

export async function askJson(llm: ChatModel, messages: ChatMessage[], opts: Omit<CompletionRequest, 'messages' | 'tools'> & { check?: (v: Record<string, unknown>) => string | null } = {}): Promise<JsonReply> {
  const msgs = [...messages];
  const warnings: string[] = [];
  let raw = '';
  for (let attempt = 0; attempt < 2; attempt++) {
    const c = await llm.complete({ ...opts, messages: msgs });
    warnings.push(...c.warnings);
    raw = c.content;
    let problem: string;
    try {
      const v = extractJsonObject(raw);
      const bad = opts.check?.(v);
      if (!bad) return { value: v, raw, warnings };
      problem = bad;
    } catch (e) {
      problem = (e as Error).message;
    }
    msgs.push({ role: 'assistant', content: raw }, { role: 'user', content: `NeuroScope could not use that reply: ${problem}. Reply with only the JSON object asked for.` });
    warnings.push(`unusable structured reply (${problem})${attempt === 0 ? '; asked again' : '; used the text as it is'}`);
  }
  return { value: null, raw, warnings };
}

export const str = (v: unknown, dflt = ''): string => (typeof v === 'string' ? v.trim() : v === undefined || v === null ? dflt : JSON.stringify(v));
export const strList = (v: unknown): string[] => (Array.isArray(v) ? v.map((x) => str(x)).filter(Boolean) : typeof v === 'string' && v.trim() ? [v.trim()] : []);
