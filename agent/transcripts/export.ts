// A saved chat session (JSONL) as a conversation, and as a Markdown file in transcripts/.
import { join, resolve } from 'node:path';
import { slugify, writeConversation, type Conversation, type Turn } from './markdown.ts';
import { readSession, type LoadedSession, type SessionEvent } from './session.ts';

export const TRANSCRIPTS_DIR = 'transcripts';

export function sessionConversation(s: LoadedSession): Conversation {
  const turns: Turn[] = [{ items: [] }];
  let model = s.meta.model;
  const tools = new Map<string, Extract<Turn['items'][number], { kind: 'tool' }>>();
  // A streamed reply is logged as partials, then final; the last of them stands.
  let pending: { kind: 'assistant'; text: string } | null = null;
  const cur = () => turns[turns.length - 1];
  for (const e of s.events as SessionEvent[]) {
    switch (e.type) {
      case 'user':
        pending = null;
        turns.push({ user: e.text, items: [] });
        break;
      case 'assistant':
        if (pending) pending.text = e.text;
        else {
          pending = { kind: 'assistant', text: e.text };
          cur().items.push(pending);
        }
        if (!e.partial) pending = null;
        break;
      case 'tool_start': {
        pending = null;
        const item = { kind: 'tool' as const, name: e.name, args: e.args, status: 'running' as const };
        tools.set(e.id, item);
        cur().items.push(item);
        break;
      }
      case 'tool_end': {
        const item = tools.get(e.id);
        const done = { status: e.status, result: e.result, structured: e.structured, structuredOmitted: e.structuredOmitted, error: e.error, ms: e.ms, grids: e.grids };
        if (item) Object.assign(item, done);
        else cur().items.push({ kind: 'tool', name: e.name, args: undefined, ...done });
        break;
      }
      case 'note':
        pending = null;
        cur().items.push({ kind: 'note', text: e.text, tone: e.tone });
        break;
      case 'model':
        model = e.model;
        break;
      default:
        break;
    }
  }
  // A tool still "running" when the log ends: the process stopped during the call.
  for (const t of tools.values()) if (t.status === 'running') Object.assign(t, { status: 'cancelled', error: 'the session ended while this call ran' });
  const firstUser = turns.find((t) => t.user !== undefined)?.user;
  const title = s.meta.title ?? (firstUser ? `NeuroScope: ${firstUser.trim().split('\n')[0].slice(0, 70)}` : `NeuroScope session ${s.id}`);
  return { title, date: s.meta.createdAt, model: model ?? s.meta.model, llm: s.meta.llm, session: s.id, turns };
}

/** Writes a session as Markdown: to `file` if given, else transcripts/<date>-<slug>.md. Returns the path. */
export async function exportSession(sessionFile: string, opts: { file?: string; outDir?: string } = {}): Promise<string> {
  const s = readSession(sessionFile);
  const conv = sessionConversation(s);
  let file: string;
  if (opts.file) file = resolve(opts.file.endsWith('.md') ? opts.file : `${opts.file}.md`);
  else {
    const first = conv.turns.find((t) => t.user !== undefined)?.user ?? 'session';
    // One file per session: exporting again brings it up to date.
    file = join(resolve(opts.outDir ?? TRANSCRIPTS_DIR), `${conv.date.slice(0, 10)}-${slugify(first.replace(/^\//, ''), 40)}-${s.id.slice(-4)}.md`);
  }
  return writeConversation(conv, file);
}
