// Chat sessions saved as they happen: one JSON line per event, appended and flushed at once, in
// <dataDir>/sessions/<id>.jsonl, so a crash loses nothing already shown. A session can be read back
// (a torn last line is skipped) and exported as Markdown.
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';

export type SessionEvent =
  | { type: 'meta'; id: string; createdAt: string; model?: string; modelDir?: string; llm?: string; dataDir?: string; title?: string }
  | { type: 'model'; at: string; model: string }
  | { type: 'user'; at: string; text: string }
  | { type: 'assistant'; at: string; text: string; partial?: boolean; turn?: number }
  | { type: 'tool_start'; at: string; id: string; name: string; args: unknown }
  | { type: 'tool_end'; at: string; id: string; name: string; status: 'done' | 'error' | 'cancelled'; result?: string; structured?: unknown; structuredOmitted?: string; error?: string; ms?: number; grids?: SavedGrid[] }
  | { type: 'note'; at: string; text: string; tone?: 'info' | 'error' | 'success' }
  | { type: 'clear'; at: string };

export interface SavedGrid {
  title: string;
  rowLabels: string[];
  colLabels: string[];
  values: (number | null)[][];
  rowAxis?: string;
  colAxis?: string;
}

/** Results longer than this are cut in the log (the full data lives in the store). */
export /** Characters of JSON of one structured result kept in the log. */
const MAX_LOGGED_STRUCTURED = 4_000_000;
const MAX_LOGGED_RESULT = 200_000;

export const sessionsDir = (dataDir: string) => join(resolve(dataDir), 'sessions');

export function newSessionId(d = new Date()): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}-${Math.random().toString(36).slice(2, 6)}`;
}

export class SessionLog {
  readonly file: string;
  private turn = 0;

  constructor(readonly dataDir: string, readonly id = newSessionId(), meta: Omit<Extract<SessionEvent, { type: 'meta' }>, 'type' | 'id' | 'createdAt'> = {}) {
    const dir = sessionsDir(dataDir);
    mkdirSync(dir, { recursive: true });
    this.file = join(dir, `${id}.jsonl`);
    this.write({ type: 'meta', id, createdAt: new Date().toISOString(), ...meta });
  }

  write(e: SessionEvent): void {
    let ev = e;
    if (ev.type === 'tool_end' && ev.result && ev.result.length > MAX_LOGGED_RESULT) ev = { ...ev, result: `${ev.result.slice(0, MAX_LOGGED_RESULT)}\n… (cut at ${MAX_LOGGED_RESULT} characters)` };
    if (ev.type === 'tool_end' && ev.structured !== undefined) {
      // The typed result is what transcripts render; one too large for the log is named, not cut.
      const bytes = JSON.stringify(ev.structured).length;
      if (bytes > MAX_LOGGED_STRUCTURED) ev = { ...ev, structured: undefined, structuredOmitted: `the structured result (${bytes} characters of JSON) is over the log's limit of ${MAX_LOGGED_STRUCTURED}; its numbers are in the store (the experiment's rows)` };
    }
    appendFileSync(this.file, `${JSON.stringify(ev)}\n`);
  }

  now = () => new Date().toISOString();

  user(text: string) {
    this.turn++;
    this.write({ type: 'user', at: this.now(), text });
  }

  /** Partial replies are written while streaming; the final one supersedes them. */
  assistant(text: string, partial = false) {
    this.write({ type: 'assistant', at: this.now(), text, partial, turn: this.turn });
  }

  note(text: string, tone?: 'info' | 'error' | 'success') {
    this.write({ type: 'note', at: this.now(), text, tone });
  }
}

export interface LoadedSession {
  id: string;
  file: string;
  meta: Extract<SessionEvent, { type: 'meta' }>;
  events: SessionEvent[];
  /** Lines that could not be read (a torn last line after a crash). */
  skipped: number;
}

export function readSession(file: string): LoadedSession {
  const text = readFileSync(file, 'utf8');
  const events: SessionEvent[] = [];
  let skipped = 0;
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      events.push(JSON.parse(line) as SessionEvent);
    } catch {
      skipped++;
    }
  }
  const meta = (events.find((e) => e.type === 'meta') as Extract<SessionEvent, { type: 'meta' }> | undefined) ??
    { type: 'meta' as const, id: basename(file, '.jsonl'), createdAt: statSync(file).mtime.toISOString() };
  return { id: meta.id, file, meta, events, skipped };
}

/** Session files, newest first. */
export function listSessions(dataDir: string): { id: string; file: string; mtime: Date }[] {
  const dir = sessionsDir(dataDir);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.jsonl'))
    .map((f) => ({ id: f.slice(0, -6), file: join(dir, f), mtime: statSync(join(dir, f)).mtime }))
    .sort((a, b) => b.mtime.getTime() - a.mtime.getTime() || b.id.localeCompare(a.id));
}

/** A session by file path, id, unique id prefix, or "latest". */
export function findSession(dataDir: string, which: string): string {
  if (which.endsWith('.jsonl') && existsSync(which)) return resolve(which);
  const all = listSessions(dataDir);
  if (all.length === 0) throw new Error(`no saved sessions in ${sessionsDir(dataDir)}; start a chat with "neuroscope start" first`);
  if (which === 'latest' || which === 'last') return all[0].file;
  const exact = all.find((s) => s.id === which);
  if (exact) return exact.file;
  const pre = all.filter((s) => s.id.startsWith(which));
  if (pre.length === 1) return pre[0].file;
  if (pre.length > 1) throw new Error(`"${which}" matches ${pre.length} sessions (${pre.slice(0, 5).map((s) => s.id).join(', ')}…); give more of the id`);
  throw new Error(`no session "${which}" in ${sessionsDir(dataDir)}; saved sessions (newest first): ${all.slice(0, 8).map((s) => s.id).join(', ')}`);
}
