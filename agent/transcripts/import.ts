// Conversations from elsewhere as NeuroScope Markdown transcripts: a ChatGPT data export
// (conversations.json: conversations whose `mapping` holds message nodes linked by parent/children),
// or a plain JSON message list ([{role, content}], OpenAI chat format with tool calls), one Markdown
// file per conversation.
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
      // The assistant calling a tool (python, browser, ...): the message is the call's input.
      lastTool = { kind: 'tool', name: msg.recipient, args: { input: text }, status: 'done' };
      cur().items.push(lastTool);
      continue;
    }
    if (role === 'tool') {
      const name = msg.author?.name ?? 'tool';
      if (lastTool && !lastTool.result) lastTool.result = text;
      else cur().items.push({ kind: 'tool', name, args: {}, status: 'done', result: text });
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
        else cur().items.push({ kind: 'tool', name: m.name ?? 'tool', args: {}, status: 'done', result: text });
        break;
      }
      default:
        cur().items.push({ kind: 'note', text: `_${m.role}:_ ${text}` });
    }
  });
  return { title, date, source, turns };
}

/** The conversations in a parsed JSON file: a ChatGPT export, one ChatGPT conversation, or a message list. */
export function conversationsFromJson(data: unknown, fileName: string): Conversation[] {
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
  if (Array.isArray(data) && data.length === 0) return [];
  throw new Error(`${fileName} is neither a ChatGPT export (conversations.json: an array of conversations with "mapping") nor a message list ([{"role": ..., "content": ...}])`);
}

/**
 * Reads FILE and writes one Markdown transcript per conversation into outDir (<date>-<title>.md;
 * importing the same file again rewrites the same files). Returns the paths.
 */
export async function importConversations(file: string, outDir = TRANSCRIPTS_DIR): Promise<string[]> {
  const path = resolve(file);
  if (!existsSync(path)) throw new Error(`no such file: ${path}`);
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`${path} is not JSON: ${(e as Error).message}`);
  }
  const convs = conversationsFromJson(data, basename(path));
  const written: string[] = [];
  const taken = new Set<string>();
  for (const conv of convs) {
    const target = freshPath(resolve(outDir), `${conv.date.slice(0, 10)}-${slugify(conv.title)}`, (p) => taken.has(p));
    taken.add(target);
    written.push(await writeConversation(conv, target));
  }
  return written;
}
