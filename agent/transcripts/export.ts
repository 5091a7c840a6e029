// A saved chat session (JSONL) as a conversation, and as a Markdown file in transcripts/.
import { basename, join, resolve } from 'node:path';
import { slugify, writeConversation, type Conversation, type Turn } from './markdown.ts';
import { readSession, type LoadedSession, type SessionEvent } from './session.ts';

export const TRANSCRIPTS_DIR = 'transcripts';

export function sessionConversation(s: LoadedSession): Conversation {
  const turns: Turn[] = [{ items: [] }];
  let model = s.meta.model;
  // The model each turn ran on: a session can switch models (/model), and the header names them all.
  const turnModels: (string | undefined)[] = [];
  const tools = new Map<string, Extract<Turn['items'][number], { kind: 'tool' }>>();
  // A streamed reply is logged as partials, then final; the last of them stands.
  let pending: { kind: 'assistant'; text: string } | null = null;
  const cur = () => turns[turns.length - 1];
  for (const e of s.events as SessionEvent[]) {
    switch (e.type) {
      case 'user':
        pending = null;
        turns.push({ user: e.text, items: [] });
        turnModels.push(model);
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
  return { title: s.meta.title ?? sessionTitle(turns, s.id), date: s.meta.createdAt, model: modelsByTurn(turnModels) ?? model, llm: s.meta.llm, session: s.id, turns };
}

/** Commands that say nothing about what a session studied. */
const HOUSEKEEPING = new Set(['help', 'export', 'quit', 'exit', 'q', 'clear', 'model', 'hooks', 'findings']);

/** The title: the first question asked, else the experiment commands run ("/patch, /attn"), else the session id. */
export function sessionTitle(turns: Turn[], id: string): string {
  const said = turns.flatMap((t) => (t.user === undefined ? [] : [t.user.trim().split('\n')[0]]));
  const question = said.find((u) => u && !u.startsWith('/'));
  if (question) return `NeuroScope: ${question.slice(0, 70)}`;
  const commands = [...new Set(said.map((u) => u.split(/\s/)[0]).filter((c) => c.startsWith('/') && !HOUSEKEEPING.has(c.slice(1))))];
  return commands.length ? `NeuroScope: ${commands.slice(0, 4).join(', ')}${commands.length > 4 ? ', …' : ''}` : `NeuroScope session ${id}`;
}

/** "tiny-s-seed0" for one model; "tiny-s-seed0 (turns 1-5), tiny-m-seed0 (turn 6)" when the session switched. */
export function modelsByTurn(models: (string | undefined)[]): string | undefined {
  const spans: { model: string; from: number; to: number }[] = [];
  models.forEach((m, i) => {
    if (m === undefined) return;
    const last = spans[spans.length - 1];
    if (last && last.model === m && last.to === i) last.to = i + 1;
    else spans.push({ model: m, from: i + 1, to: i + 1 });
  });
  if (spans.length <= 1) return spans[0]?.model;
  return spans.map((x) => `${x.model} (turn${x.from === x.to ? ` ${x.from}` : `s ${x.from}-${x.to}`})`).join(', ');
}

/**
 * Writes a session as Markdown: to `file` if given (a bare name like "notes" goes into the
 * transcripts folder, a path is used as it is), else transcripts/<date>-<slug>.md. Returns the path.
 */
export async function exportSession(sessionFile: string, opts: { file?: string; outDir?: string } = {}): Promise<string> {
  const s = readSession(sessionFile);
  const conv = sessionConversation(s);
  const dir = resolve(opts.outDir ?? TRANSCRIPTS_DIR);
  let file: string;
  if (opts.file) {
    const name = opts.file.endsWith('.md') ? opts.file : `${opts.file}.md`;
    file = basename(name) === name ? join(dir, name) : resolve(name);
  }
  else {
    const first = conv.turns.find((t) => t.user !== undefined)?.user ?? 'session';
    // One file per session: exporting again brings it up to date.
    file = join(dir, `${conv.date.slice(0, 10)}-${slugify(first.replace(/^\//, ''), 40)}-${s.id.slice(-4)}.md`);
  }
  return writeConversation(conv, file);
}
