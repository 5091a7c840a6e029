// The harmony chat format of gpt-oss: rendering conversations into prompt text and parsing what the
// model generates back into messages. Layout follows openai/harmony's renderer:
//   <|start|>{role}[ to={recipient}][<|channel|>{channel}][ {contentType}]<|message|>{content}<|end|>
// with no separators between messages. Strings only: tokenise the result with Tokenizer.encode,
// which maps the <|...|> markers to their special ids.
import type { Tokenizer } from './tokenizer.ts';

export type Role = 'system' | 'developer' | 'user' | 'assistant' | 'tool';
export type Channel = 'analysis' | 'commentary' | 'final';

export interface HarmonyMessage {
  role: Role;
  content: string;
  channel?: Channel;
  /** e.g. "functions.get_weather" on an assistant tool call, "assistant" on a tool's reply. */
  recipient?: string;
  /** e.g. "<|constrain|>json" (as the model writes it) or "json". */
  contentType?: string;
  /** Tool messages only: the tool's name, which harmony writes in place of the role
   *  (`<|start|>functions.get_weather to=assistant...`). */
  name?: string;
}

export const HARMONY = {
  start: '<|start|>',
  end: '<|end|>',
  message: '<|message|>',
  channel: '<|channel|>',
  constrain: '<|constrain|>',
  return: '<|return|>',
  call: '<|call|>',
} as const;

/** Tokens that end a sampled assistant turn: a final answer or a tool call. (`<|end|>` only ends
 *  one message; the model continues with `<|start|>assistant` after it.) */
export const HARMONY_STOP_TOKENS: readonly string[] = [HARMONY.return, HARMONY.call];

const CHANNELS: readonly string[] = ['analysis', 'commentary', 'final'];
const ROLES: readonly string[] = ['system', 'developer', 'user', 'assistant', 'tool'];

export class HarmonyParseError extends Error {
  override name = 'HarmonyParseError';
}

/** The standard gpt-oss system message. The "Current date" line is written only when a date is given
 *  (harmony omits it too), keeping prompts reproducible. */
export function systemMessage(
  opts: { reasoningEffort?: 'low' | 'medium' | 'high'; knowledgeCutoff?: string; currentDate?: string } = {},
): HarmonyMessage {
  const top = ['You are ChatGPT, a large language model trained by OpenAI.', `Knowledge cutoff: ${opts.knowledgeCutoff ?? '2024-06'}`];
  if (opts.currentDate) top.push(`Current date: ${opts.currentDate}`);
  const content = [
    top.join('\n'),
    `Reasoning: ${opts.reasoningEffort ?? 'medium'}`,
    '# Valid channels: analysis, commentary, final. Channel must be included for every message.',
  ].join('\n\n');
  return { role: 'system', content };
}

/** A developer message carrying instructions (harmony's "# Instructions" section). */
export function developerMessage(instructions: string): HarmonyMessage {
  return { role: 'developer', content: `# Instructions\n\n${instructions}` };
}

/** One message, ending with <|end|>, or <|call|> for an assistant message addressed to a tool. */
export function renderMessage(m: HarmonyMessage, terminator?: string): string {
  let s = HARMONY.start;
  if (m.role === 'tool') {
    if (!m.name) throw new Error('harmony tool messages need a name (e.g. "functions.get_weather")');
    s += m.name;
  } else {
    s += m.role;
  }
  if (m.recipient && m.recipient !== 'all') s += ` to=${m.recipient}`;
  if (m.channel) s += HARMONY.channel + m.channel;
  if (m.contentType) s += ` ${m.contentType}`;
  s += HARMONY.message + m.content;
  const toolCall = m.role === 'assistant' && !!m.recipient && m.recipient !== 'all';
  return s + (terminator ?? (toolCall ? HARMONY.call : HARMONY.end));
}

/**
 * Render a conversation. addGenerationPrompt (default: true unless finalReturn) appends
 * `<|start|>assistant` for the model to continue. finalReturn ends a trailing assistant `final`
 * message with <|return|> instead of <|end|>, as a completed turn is written when training.
 */
export function renderConversation(
  messages: HarmonyMessage[],
  opts: { addGenerationPrompt?: boolean; finalReturn?: boolean } = {},
): string {
  const addPrompt = opts.addGenerationPrompt ?? !opts.finalReturn;
  const last = messages.length - 1;
  let out = '';
  messages.forEach((m, i) => {
    const returns = opts.finalReturn && i === last && m.role === 'assistant' && m.channel === 'final' && !m.recipient;
    out += renderMessage(m, returns ? HARMONY.return : undefined);
  });
  if (addPrompt) out += `${HARMONY.start}assistant`;
  return out;
}

/**
 * Parse what the model generated after `<|start|>assistant` (a leading `<|start|>` is accepted too)
 * into messages. A message whose content was cut off (no <|end|>/<|return|>/<|call|>) keeps the text
 * so far; a trailing header cut off before <|message|> is dropped. Malformed headers throw.
 */
export function parseCompletion(text: string): HarmonyMessage[] {
  const out: HarmonyMessage[] = [];
  let pos = 0;
  let role: Role | null = 'assistant';
  if (text.startsWith(HARMONY.start)) {
    pos = HARMONY.start.length;
    role = null;
  }
  while (pos < text.length) {
    const msgAt = text.indexOf(HARMONY.message, pos);
    if (msgAt < 0) break;
    const header = parseHeader(text.slice(pos, msgAt), role);
    const contentStart = msgAt + HARMONY.message.length;
    // A new <|start|> also closes the content, in case the model skipped <|end|>.
    const stop = earliest(text, contentStart, [HARMONY.end, HARMONY.return, HARMONY.call, HARMONY.start]);
    out.push({ ...header, content: text.slice(contentStart, stop ? stop.at : text.length) });
    if (!stop) break;
    pos = stop.marker === HARMONY.start ? stop.at : stop.at + stop.marker.length;
    if (stop.marker === HARMONY.return || stop.marker === HARMONY.call) break; // the turn is over
    const next = text.indexOf(HARMONY.start, pos);
    if (next < 0) break;
    pos = next + HARMONY.start.length;
    role = null;
  }
  return out;
}

/** Ids of HARMONY_STOP_TOKENS in this tokenizer (those it has; word-level vocabularies may have none). */
export function stopTokenIds(tok: Tokenizer): number[] {
  return HARMONY_STOP_TOKENS.map((t) => tok.tokenId(t)).filter((id): id is number => id !== undefined);
}

function earliest(text: string, from: number, markers: string[]): { at: number; marker: string } | null {
  let best: { at: number; marker: string } | null = null;
  for (const marker of markers) {
    const at = text.indexOf(marker, from);
    if (at >= 0 && (!best || at < best.at)) best = { at, marker };
  }
  return best;
}

// Mirrors harmony's header parser: take out `<|channel|>name`, then split on whitespace into
// [role] [to=recipient | recipient] [content type].
function parseHeader(raw: string, knownRole: Role | null): Omit<HarmonyMessage, 'content'> {
  let h = raw;
  let channel: Channel | undefined;
  const ci = h.indexOf(HARMONY.channel);
  if (ci >= 0) {
    const after = h.slice(ci + HARMONY.channel.length);
    const name = after.match(/^[^\s<]*/)![0];
    if (!CHANNELS.includes(name)) {
      throw new HarmonyParseError(`unknown harmony channel "${name}" in header ${JSON.stringify(raw)}`);
    }
    channel = name as Channel;
    h = h.slice(0, ci) + after.slice(name.length);
  }
  h = h.replaceAll(HARMONY.constrain, ` ${HARMONY.constrain}`).trim();
  const parts = h.split(/\s+/).filter(Boolean);

  let role: Role;
  let name: string | undefined;
  if (knownRole) {
    role = knownRole;
  } else {
    const first = parts[0];
    if (first === undefined) throw new HarmonyParseError(`harmony header has no role: ${JSON.stringify(raw)}`);
    if (ROLES.includes(first)) {
      role = first as Role;
    } else if (parts.length > 1 || first.startsWith('to=')) {
      role = 'tool'; // an unknown author that addresses someone is a tool, e.g. functions.get_weather
      name = first;
    } else {
      throw new HarmonyParseError(`unknown harmony role "${first}"`);
    }
  }
  if (parts[0] === role || (name !== undefined && parts[0] === name)) parts.shift();

  let recipient: string | undefined;
  let contentType: string | undefined;
  const last = parts.pop();
  if (last !== undefined) {
    if (last.startsWith('to=')) recipient = last.slice(3);
    else if (parts.length === 0 && !last.startsWith(HARMONY.constrain)) recipient = last;
    else {
      contentType = last;
      const r = parts.pop();
      if (r !== undefined) recipient = r.startsWith('to=') ? r.slice(3) : r;
    }
  }
  if (parts.length > 0) {
    throw new HarmonyParseError(`unexpected text in harmony header ${JSON.stringify(raw)}`);
  }
  const msg: Omit<HarmonyMessage, 'content'> = { role };
  if (channel) msg.channel = channel;
  if (recipient !== undefined) msg.recipient = recipient;
  if (contentType !== undefined) msg.contentType = contentType;
  if (name !== undefined) msg.name = name;
  return msg;
}
