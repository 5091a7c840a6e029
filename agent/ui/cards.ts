// The tool-card lifecycle, written once: a card opens (scrollback + session log), shows progress,
// and ends as done (result, grids), error or cancelled (logged with its duration). Slash-command
// calls, the agent's calls, investigations and in-process work (the suite) all use it.
import type { SessionLog } from '../transcripts/session.ts';
import { toolHint } from './host.ts';
import { gridsOf, titledGrid, type Grid } from './results.ts';
import type { ToolCallView } from './ToolCard.tsx';

export interface CardDisplay {
  tableRows?: number;
  textLines?: number;
  maxTables?: number;
}

export interface CardEnd {
  ok: boolean;
  /** The result text (for language models), or the error message. */
  text: string;
  structured?: unknown;
  /** Grids to draw instead of those read from the result (e.g. relabelled with tokens). */
  grids?: Grid[];
}

export interface Card {
  progress(p: { progress: number; total?: number; message?: string }): void;
  end(e: CardEnd): void;
}

/** What the cards need of the chat: its scrollback, its log, and whether the user cancelled. */
export interface CardSink {
  addCard(id: string, call: ToolCallView): void;
  updateCard(id: string, f: (call: ToolCallView) => ToolCallView): void;
  log: SessionLog;
  cancelled(): boolean;
  /** Tools this chat can call (to say how a tool named in an error is reached from the chat). */
  toolNames(): string[];
  /** A tool's output schema (JSON Schema), to name what its grids hold. */
  outputSchema(tool: string): unknown;
}

let nextId = 0;

export function openCard(sink: CardSink, name: string, args: unknown, display: CardDisplay = {}, callId = `c${++nextId}`): Card {
  const id = `t${++nextId}`;
  const startedAt = Date.now();
  sink.addCard(id, { id: callId, name, args, status: 'running', startedAt, ...display });
  sink.log.write({ type: 'tool_start', at: sink.log.now(), id: callId, name, args });
  let ended = false;
  return {
    progress: (p) => {
      if (!ended) sink.updateCard(id, (c) => ({ ...c, progress: { done: p.progress, total: p.total, message: p.message } }));
    },
    end: (e) => {
      if (ended) return;
      ended = true;
      const endedAt = Date.now();
      const status = e.ok ? 'done' : sink.cancelled() ? 'cancelled' : 'error';
      const error = e.ok ? undefined : status === 'cancelled' ? `${name} was cancelled` : `${e.text}${toolHint(e.text, name, sink.toolNames())}`;
      const shown = e.ok ? (e.grids ?? gridsOf(e.structured)).map((g) => titledGrid(g, name, sink.outputSchema(name))) : [];
      sink.updateCard(id, (c) => ({
        ...c, status, endedAt,
        ...(e.ok ? { resultText: e.text, structured: e.structured, grids: shown } : { error }),
      }));
      sink.log.write({
        type: 'tool_end', at: sink.log.now(), id: callId, name, status, ms: endedAt - startedAt,
        ...(e.ok ? { result: e.text, structured: e.structured, grids: shown.length ? shown : undefined } : { error }),
      });
    },
  };
}
