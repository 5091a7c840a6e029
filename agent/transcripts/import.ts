// Conversations from elsewhere as NeuroScope Markdown transcripts: a ChatGPT data export
// (conversations.json: conversations whose `mapping` holds message nodes linked by parent/children),
// a Claude data export (conversations with `chat_messages`), a plain JSON message list ([{role,
// content}], OpenAI chat format with tool calls), or a conversation pasted as text ("User: ..." /
// "Assistant: ..." turns with Markdown inside); one Markdown file per conversation.
import { existsSync, readFileSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { freshPath, slugify, writeConversation, type Conversation, type Turn, type TurnItem } from './markdown.ts';
import { TRANSCRIPTS_DIR } from './export.ts';

interface GptNode {
  id?: string;
  message?: GptMessage | null;
  parent?: string | null;
  children?: string[];
}

interface GptMessage {
  author?: { role?: string; name?: string | null };
  create_time?: number | null;
  recipient?: string;
  content?: { content_type?: string; parts?: unknown[]; text?: string; language?: string; result?: string } | null;
  metadata?: Record<string, unknown>;
}

interface GptConversation {
  title?: string | null;
  create_time?: number | null;
  current_node?: string | null;
  mapping?: Record<string, GptNode>;
  id?: string;
  conversation_id?: string;
}

const isRecord = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);

/** The visible path of a conversation: from current_node up to the root, else the root down the last children. */
export function conversationPath(c: GptConversation): GptMessage[] {
  const m = c.mapping ?? {};
  const ids: string[] = [];
  if (c.current_node && m[c.current_node]) {
    const seen = new Set<string>();
    for (let id: string | null | undefined = c.current_node; id && m[id] && !seen.has(id); id = m[id].parent) {
      seen.add(id);
      ids.push(id);
    }
    ids.reverse();
  } else {
    const root = Object.keys(m).find((id) => !m[id].parent || !m[m[id].parent!]);
    const seen = new Set<string>();
    for (let id: string | undefined = root; id && m[id] && !seen.has(id); id = m[id].children?.[m[id].children!.length - 1]) {
      seen.add(id);
      ids.push(id);
    }
  }
  return ids.map((id) => m[id].message).filter((x): x is GptMessage => !!x);
}

function partText(p: unknown): string {
  if (typeof p === 'string') return p;
  if (isRecord(p)) {
    if (typeof p.text === 'string') return p.text;
    if (p.content_type === 'image_asset_pointer' || typeof p.asset_pointer === 'string') return '[image]';
    if (p.content_type === 'audio_transcription' && typeof p.text === 'string') return p.text;
    if (typeof p.content_type === 'string') return `[${p.content_type}]`;
  }
  return '';
}

/** The text of a ChatGPT message, or null for messages not shown in the conversation. */
export function gptMessageText(msg: GptMessage): string | null {
  const c = msg.content;
  if (!c) return null;
  if (msg.metadata?.is_visually_hidden_from_conversation) return null;
  switch (c.content_type) {
    case 'user_editable_context':
    case 'model_editable_context':
    case 'thoughts':
    case 'reasoning_recap':
      return null;
    case 'code':
      return `\`\`\`${c.language && c.language !== 'unknown' ? c.language : ''}\n${c.text ?? ''}\n\`\`\``;
    case 'execution_output':
      return c.text ?? '';
    case 'tether_browsing_display':
      return c.result ?? '';
    default:
      if (Array.isArray(c.parts)) return c.parts.map(partText).filter((s) => s !== '').join('\n\n');
      return typeof c.text === 'string' ? c.text : null;
  }
}

export function chatgptConversation(c: GptConversation, source: string): Conversation {
  const turns: Turn[] = [{ items: [] }];
  const cur = () => turns[turns.length - 1];
  let lastTool: Extract<TurnItem, { kind: 'tool' }> | null = null;
  for (const msg of conversationPath(c)) {
    const role = msg.author?.role ?? 'unknown';
    const text = gptMessageText(msg);
    if (text === null) continue;
    if (role === 'system') {
      if (text.trim()) cur().items.push({ kind: 'note', text: `_System:_ ${text}` });
      continue;
    }
    if (role === 'user') {
      if (!text.trim()) continue;
      turns.push({ user: text, items: [] });
      lastTool = null;
      continue;
    }
    if (role === 'assistant' && msg.recipient && msg.recipient !== 'all') {
      // The assistant calling a tool (python, browser, ...): the message is the call's input, shown as code.
      const code = msg.content?.content_type === 'code' ? msg.content : null;
      const language = code?.language && code.language !== 'unknown' ? code.language : '';
      lastTool = { kind: 'tool', name: msg.recipient, args: undefined, input: { language, text: code ? (code.text ?? '') : text }, status: 'done' };
      cur().items.push(lastTool);
      continue;
    }
    if (role === 'tool') {
      const name = msg.author?.name ?? 'tool';
      if (lastTool && !lastTool.result) lastTool.result = text;
      else cur().items.push({ kind: 'tool', name, args: undefined, status: 'done', result: text });
      continue;
    }
    if (!text.trim()) continue;
    cur().items.push({ kind: 'assistant', text });
  }
  const created = typeof c.create_time === 'number' ? new Date(c.create_time * 1000).toISOString() : new Date(0).toISOString();
  return { title: c.title?.trim() || 'Untitled conversation', date: created, source, turns };
}

interface PlainMessage {
  role?: string;
  content?: unknown;
  name?: string;
  tool_calls?: { id?: string; function?: { name?: string; arguments?: string } }[];
  tool_call_id?: string;
}

function plainContent(c: unknown): string {
  if (typeof c === 'string') return c;
  if (Array.isArray(c)) return c.map((p) => (typeof p === 'string' ? p : isRecord(p) ? (typeof p.text === 'string' ? p.text : p.type === 'image_url' ? '[image]' : '') : '')).filter(Boolean).join('\n\n');
  if (c === null || c === undefined) return '';
  return JSON.stringify(c);
}

export function plainConversation(messages: PlainMessage[], title: string, source: string, date = new Date().toISOString()): Conversation {
  if (messages.length === 0) throw new Error(`no messages in ${source}`);
  const turns: Turn[] = [{ items: [] }];
  const cur = () => turns[turns.length - 1];
  const calls = new Map<string, Extract<TurnItem, { kind: 'tool' }>>();
  messages.forEach((raw, i) => {
    const m = raw as PlainMessage;
    if (!isRecord(raw) || typeof m.role !== 'string') throw new Error(`message ${i} has no role; expected {"role": "user" | "assistant" | "system" | "tool", "content": ...}`);
    const text = plainContent(m.content);
    switch (m.role) {
      case 'user':
        turns.push({ user: text, items: [] });
        break;
      case 'system':
      case 'developer':
        if (text.trim()) cur().items.push({ kind: 'note', text: `_${m.role === 'system' ? 'System' : 'Developer'}:_ ${text}` });
        break;
      case 'assistant':
        if (text.trim()) cur().items.push({ kind: 'assistant', text });
        for (const tc of m.tool_calls ?? []) {
          let args: unknown = tc.function?.arguments ?? {};
          try {
            if (typeof args === 'string') args = JSON.parse(args);
          } catch {
            /* keep the raw text */
          }
          const item = { kind: 'tool' as const, name: tc.function?.name ?? 'tool', args, status: 'done' as const };
          if (tc.id) calls.set(tc.id, item);
          cur().items.push(item);
        }
        break;
      case 'tool':
      case 'function': {
        const item = m.tool_call_id ? calls.get(m.tool_call_id) : undefined;
        if (item) item.result = text;
        else cur().items.push({ kind: 'tool', name: m.name ?? 'tool', args: undefined, status: 'done', result: text });
        break;
      }
      default:
        cur().items.push({ kind: 'note', text: `_${m.role}:_ ${text}` });
    }
  });
  return { title, date, source, turns };
}

interface ClaudeConversation {
  name?: string | null;
  created_at?: string;
  chat_messages?: { sender?: string; text?: string; content?: unknown[]; created_at?: string }[];
}

/** One Claude message's blocks: text as it is, a tool use as a call, a tool result as its output. */
function claudeItems(m: NonNullable<ClaudeConversation['chat_messages']>[number]): (TurnItem | string)[] {
  const blocks = Array.isArray(m.content) && m.content.length ? m.content : [{ type: 'text', text: m.text ?? '' }];
  return blocks.map((b): TurnItem | string => {
    if (!isRecord(b)) return '';
    if (b.type === 'text') return typeof b.text === 'string' ? b.text : '';
    if (b.type === 'tool_use') return { kind: 'tool', name: typeof b.name === 'string' ? b.name : 'tool', args: b.input ?? undefined, status: 'done' };
    if (b.type === 'tool_result') {
      const c = Array.isArray(b.content) ? b.content.map((x) => (isRecord(x) && typeof x.text === 'string' ? x.text : '')).join('\n') : typeof b.content === 'string' ? b.content : '';
      return { kind: 'tool', name: typeof b.name === 'string' ? b.name : 'tool result', args: undefined, status: b.is_error ? 'error' : 'done', result: c, ...(b.is_error ? { error: c } : {}) };
    }
    return typeof b.type === 'string' ? `[${b.type}]` : '';
  });
}

export function claudeConversation(c: ClaudeConversation, source: string): Conversation {
  const turns: Turn[] = [{ items: [] }];
  const cur = () => turns[turns.length - 1];
  for (const m of c.chat_messages ?? []) {
    const items = claudeItems(m);
    if (m.sender === 'human') {
      turns.push({ user: items.filter((x): x is string => typeof x === 'string').join('\n\n'), items: [] });
      continue;
    }
    for (const it of items) {
      if (typeof it !== 'string') {
        // A tool result answers the call just before it.
        const last = cur().items[cur().items.length - 1];
        if (it.kind === 'tool' && it.result !== undefined && last?.kind === 'tool' && last.result === undefined) Object.assign(last, { result: it.result, status: it.status, error: it.error });
        else cur().items.push(it);
      } else if (it.trim()) cur().items.push({ kind: 'assistant', text: it });
    }
  }
  return { title: c.name?.trim() || 'Untitled conversation', date: c.created_at ?? new Date(0).toISOString(), source, turns };
}

const ROLE_LABEL = /^(?:#{1,6}\s*)?(?:\*\*)?(user|you|human|me|assistant|chatgpt|claude|ai|gpt|system)(?:\*\*)?\s*:(?:\*\*)?[ \t]*(.*)$/i;

/**
 * A conversation pasted as text: turns start with a role label at the start of a line ("User:",
 * "Assistant:", "ChatGPT:", "Claude:", "Human:", also **User:** or ## User:), Markdown inside;
 * labels inside code fences are text. Null when the text has no user and no assistant turn.
 */
export function textConversation(text: string, fileName: string): Conversation | null {
  const messages: { role: string; lines: string[] }[] = [];
  let fenced = false;
  for (const line of text.replace(/\r\n?/g, '\n').split('\n')) {
    if (/^\s*(```|~~~)/.test(line)) fenced = !fenced;
    const m = fenced ? null : line.match(ROLE_LABEL);
    if (m) {
      const who = m[1].toLowerCase();
      messages.push({ role: ['user', 'you', 'human', 'me'].includes(who) ? 'user' : who === 'system' ? 'system' : 'assistant', lines: m[2] ? [m[2]] : [] });
    } else if (messages.length) messages[messages.length - 1].lines.push(line);
    else if (line.trim()) return null;
  }
  if (!messages.some((m) => m.role === 'user') || !messages.some((m) => m.role === 'assistant')) return null;
  const list = messages.map((m) => ({ role: m.role, content: m.lines.join('\n').trim() }));
  const first = list.find((m) => m.role === 'user')!.content.split('\n')[0].slice(0, 60);
  return plainConversation(list, `Imported conversation: ${first || basename(fileName)}`, `pasted conversation (${fileName})`);
}

/** The conversations in a parsed JSON file: a ChatGPT or Claude export, one conversation, or a message list. */
export function conversationsFromJson(data: unknown, fileName: string): Conversation[] {
  if (Array.isArray(data) && data.length === 0) throw new Error(`${fileName} holds an empty list: no conversations to import (expected a ChatGPT or Claude conversations.json, or a message list [{"role": ..., "content": ...}])`);
  const isClaude = (x: unknown) => isRecord(x) && Array.isArray(x.chat_messages);
  if (Array.isArray(data) && data.every(isClaude)) return (data as ClaudeConversation[]).map((c) => claudeConversation(c, `Claude data export (${fileName})`));
  if (isClaude(data)) return [claudeConversation(data as ClaudeConversation, `Claude conversation (${fileName})`)];
  const isGpt = (x: unknown) => isRecord(x) && isRecord(x.mapping);
  if (Array.isArray(data) && data.length > 0 && data.every(isGpt)) {
    return (data as GptConversation[]).map((c) => chatgptConversation(c, `ChatGPT data export (${fileName})`));
  }
  if (isGpt(data)) return [chatgptConversation(data as GptConversation, `ChatGPT conversation (${fileName})`)];
  const list = Array.isArray(data) ? data : isRecord(data) && Array.isArray(data.messages) ? data.messages : null;
  if (list && list.every((m) => isRecord(m) && typeof m.role === 'string')) {
    const title = isRecord(data) && typeof data.title === 'string' ? data.title
      : `Imported conversation: ${plainContent((list as PlainMessage[]).find((m) => m.role === 'user')?.content).trim().split('\n')[0].slice(0, 60) || basename(fileName)}`;
    return [plainConversation(list as PlainMessage[], title, `JSON message list (${fileName})`)];
  }
  throw new Error(`${fileName} is neither a ChatGPT export (conversations.json: an array of conversations with "mapping"), a Claude export (conversations with "chat_messages") nor a message list ([{"role": ..., "content": ...}])`);
}

/**
 * Reads FILE and writes one Markdown transcript per conversation into outDir (<date>-<title>.md;
 * importing the same file again rewrites the same files). Returns the paths.
 */
export async function importConversations(file: string, outDir = TRANSCRIPTS_DIR): Promise<string[]> {
  const path = resolve(file);
  if (!existsSync(path)) throw new Error(`no such file: ${path}`);
  const text = readFileSync(path, 'utf8');
  let convs: Conversation[];
  try {
    convs = conversationsFromJson(JSON.parse(text), basename(path));
  } catch (e) {
    if (!(e instanceof SyntaxError)) throw e;
    // Not JSON: a conversation pasted as text.
    const conv = textConversation(text, basename(path));
    if (!conv) throw new Error(`${path} is neither JSON (a ChatGPT or Claude export, a message list) nor a pasted conversation with "User:" and "Assistant:" turns at the start of lines`);
    convs = [conv];
  }
  const written: string[] = [];
  const taken = new Set<string>();
  for (const conv of convs) {
    const target = freshPath(resolve(outDir), `${conv.date.slice(0, 10)}-${slugify(conv.title)}`, (p) => taken.has(p));
    taken.add(target);
    written.push(await writeConversation(conv, target));
  }
  return written;
}
