// The `investigate` and `chat` commands: thin faces over agent/ for a terminal. Progress goes to
// stderr, answers and reports to stdout. The Ink UI (agent/ui/) is the richer chat; this one is a
// plain line-by-line REPL that also works in pipes and scripts.
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { defaultDataDir } from '../tools/defaults.ts';
import { progressPrinter } from './progress.ts';
import { ChatSession, NoLlmError } from './chat.ts';
export { AGENT_OPTIONS, AGENT_USAGE } from './cli-options.ts';
import { investigate, type InvestigationEvent } from './investigate/index.ts';
import { createChatModel, formatUsage, resolveLlmConfig, type ChatModel } from './llm/index.ts';
import { McpToolbox, type McpTarget } from './mcp.ts';

type Values = Record<string, string | boolean | undefined>;

function positiveInt(v: unknown, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, got "${v}"`);
  return n;
}

/** The MCP server the agent talks to, from the options. */
export function mcpTarget(v: Values): { target: McpTarget; dataDir: string } {
  const dataDir = resolve((v.data as string | undefined) ?? defaultDataDir());
  const model = v.model as string | undefined;
  if (v['mcp-url']) return { target: { kind: 'http', url: String(v['mcp-url']), token: (v['mcp-token'] as string | undefined) ?? process.env.NEUROSCOPE_TOKEN }, dataDir };
  const how = (v.mcp as string | undefined) ?? 'in-process';
  if (how === 'stdio') return { target: { kind: 'stdio', model, dataDir }, dataDir };
  if (how !== 'in-process') throw new Error(`--mcp is "in-process" or "stdio" (or give --mcp-url for Streamable HTTP); got "${how}"`);
  const threads = v.threads === undefined ? undefined : Number(v.threads);
  return { target: { kind: 'in-process', model, dataDir, threads }, dataDir };
}

/** The configured LLM, or null (no OPENAI_API_KEY / OPENAI_BASE_URL, or --no-llm). */
export function llmFromOptions(v: Values): ChatModel | null {
  if (v['no-llm']) return null;
  const c = resolveLlmConfig({ model: v['llm-model'] as string | undefined, baseURL: v['llm-base-url'] as string | undefined, reasoningEffort: v['reasoning-effort'] as string | undefined, backend: v['llm-backend'] as string | undefined, contextTokens: v['context-tokens'] as string | undefined });
  return c ? createChatModel(c) : null;
}

/** Options that pick the model, store, MCP server and LLM: a resumed investigation needs the same ones. */
const RESUME_OPTIONS = ['model', 'data', 'mcp', 'mcp-url', 'llm-model', 'llm-base-url', 'llm-backend', 'reasoning-effort', 'context-tokens', 'threads'] as const;

const shellQuote = (x: string): string => (/^[\w@%+=:,./-]+$/.test(x) ? x : `'${x.replace(/'/g, `'\\''`)}'`);

/** The exact command that resumes investigation `id` with the options this one was started with. */
export function resumeCommand(v: Values, id: string): string {
  const opts = RESUME_OPTIONS.filter((k) => typeof v[k] === 'string').map((k) => `--${k} ${shellQuote(String(v[k]))}`);
  return ['neuroscope investigate --resume', id, ...opts].join(' ');
}

/** Many lines as one (an error's later lines are often the useful ones). */
const oneLine = (text: string, max = 400): string => {
  const s = text.replace(/\s*\n\s*/g, ' ⏎ ').trim();
  return s.length <= max ? s : `${s.slice(0, max)}…`;
};

function eventPrinter(stream: NodeJS.WriteStream = process.stderr, resume?: (id: string) => string) {
  const bar = progressPrinter(stream);
  let streaming = '';
  const line = (s: string) => {
    if (streaming) {
      stream.write('\n');
      streaming = '';
    }
    stream.write(`${s}\n`);
  };
  return (e: InvestigationEvent) => {
    switch (e.type) {
      case 'started': line(`investigation ${e.id}${e.resumed ? ' (resumed)' : ''}; if it stops, carry on with: ${resume ? resume(e.id) : `neuroscope investigate --resume ${e.id}`}`); break;
      case 'step': line(`· ${e.message}`); break;
      case 'hypothesis': line(`\nH${e.n}: ${e.statement}${e.prediction ? `\n    prediction: ${e.prediction}` : ''}`); break;
      case 'design': line(`    plan: ${e.plan}`); break;
      case 'tool-start': line(`  -> ${e.name} ${JSON.stringify(e.args).slice(0, 160)}`); break;
      case 'progress': bar.step(e.name, e.progress, e.total ?? e.progress, e.message ?? ''); break;
      case 'tool-refused': line(`  refused ${e.name}: ${oneLine(e.reason, 300)}`); break;
      case 'tool-end': bar.done(); line(`  ${e.ok ? 'ok' : 'error'} ${e.name} (${(e.ms / 1000).toFixed(1)} s)${e.experimentIds.length ? ` ${e.experimentIds.join(' ')}` : ''}${e.ok ? '' : `: ${oneLine(e.text)}`}`); break;
      case 'analysis': line(`    verdict: ${e.verdict} - ${e.result}`); break;
      case 'finding': line(`    finding: ${e.name}`); break;
      case 'decision': line(`decision: ${e.decision}${e.reason ? ` (${e.reason})` : ''}`); break;
      case 'retry': line(`  (LLM: ${e.reason}; retry ${e.attempt} of ${e.maxRetries} in ${(e.delayMs / 1000).toFixed(1)} s)`); break;
      case 'note': line(`  note: ${e.message}`); break;
      case 'token': break;
    }
  };
}

export async function investigateCommand(v: Values, positionals: string[]): Promise<number> {
  const question = positionals.join(' ').trim();
  const resumeId = v.resume as string | undefined;
  if (!question && !resumeId) throw new Error('give a question: neuroscope investigate "Which heads carry IOI?" (or --resume <id>)');
  const budget = positiveInt(v.budget, '--budget');
  const time = positiveInt(v.time, '--time');
  const maxHyp = positiveInt(v['max-hypotheses'], '--max-hypotheses');
  const maxRounds = positiveInt(v['max-rounds'], '--max-rounds');
  const llm = llmFromOptions(v);
  const { target, dataDir } = mcpTarget(v);
  const out = process.stderr;
  const resume = (id: string) => resumeCommand(v, id);
  out.write(llm ? `Agent: ${llm.model} at ${llm.endpoint} · ${llm.context.describe()}\n` : 'No LLM is configured (OPENAI_API_KEY / OPENAI_BASE_URL): the built-in protocol for the question runs instead; no LLM takes part.\n');
  const toolbox = await McpToolbox.connect(target);
  const ac = new AbortController();
  const onSigint = () => {
    if (ac.signal.aborted) process.exit(130);
    out.write('\ninterrupting (the investigation is saved; Ctrl+C again to quit at once)\n');
    ac.abort();
  };
  process.on('SIGINT', onSigint);
  try {
    // A failure throws an InvestigationFailedError whose message ends with the resume command.
    const r = await investigate({
      question: question || undefined, resume: resumeId, toolbox, dataDir, llm, budget, timeMinutes: time, maxHypotheses: maxHyp, maxRounds, signal: ac.signal,
      onEvent: eventPrinter(out, resume), resumeCommand: resume,
    });
    if (v.json) console.log(JSON.stringify(r, null, 2));
    else {
      console.log(`\n${r.message}`);
      if (r.report) console.log(`report: ${r.report.path ?? r.report.name}${r.report.uri ? ` (${r.report.uri})` : ''}`);
      if (r.usage) console.log(`LLM usage: ${formatUsage(r.usage)}`);
      console.log(`investigation: ${r.id}`);
    }
    // A concluded run whose report could not be written is not a success.
    return r.status === 'interrupted' ? 130 : r.mode === 'llm' && !r.report ? 1 : 0;
  } finally {
    process.off('SIGINT', onSigint);
    await toolbox.close();
  }
}

const CHAT_HELP = `Commands:
  /tools                     list the tools
  /call <tool> {json}        call a tool directly (works without an LLM)
  /investigate <question>    run the hypothesis loop (or the built-in protocol without an LLM)
  /usage                     tokens and cost so far
  /export [file]             write the conversation as Markdown
  /reset                     forget the conversation
  /quit                      leave
Anything else is a message to the agent.
This is the line chat (for pipes and scripts); the terminal chat with /patch, /model, /capture, /suite
and heatmaps is \`neuroscope start\` (npm start) on a terminal.`;

export async function chatCommand(v: Values): Promise<number> {
  const llm = llmFromOptions(v);
  const { target, dataDir } = mcpTarget(v);
  const toolbox = await McpToolbox.connect(target);
  const session = await ChatSession.create({ toolbox, llm });
  const tty = process.stdin.isTTY;
  const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: tty });
  const err = process.stderr;
  err.write(`NeuroScope chat · ${llm ? `${llm.model} at ${llm.endpoint}` : 'no LLM configured (set OPENAI_API_KEY or OPENAI_BASE_URL): slash commands only'} · /help for commands\n`);
  let turn: AbortController | null = null;
  rl.on('SIGINT', () => {
    if (turn) turn.abort();
    else rl.close();
  });
  const printer = eventPrinter(err);
  const lines = rl[Symbol.asyncIterator]();
  const ask = async (): Promise<string | null> => {
    if (tty) {
      rl.setPrompt('> ');
      rl.prompt();
    }
    const r = await lines.next();
    return r.done ? null : r.value;
  };
  try {
    for (;;) {
      const text = (await ask())?.trim();
      if (text === undefined) break;
      if (!text) continue;
      try {
        if (text === '/quit' || text === '/exit') break;
        if (text === '/help') err.write(`${CHAT_HELP}\n`);
        else if (text === '/tools') for (const t of session.tools) console.log(`${t.name.padEnd(22)} ${t.description.split('. ')[0]}`);
        else if (text === '/usage') console.log(session.usage ? formatUsage(session.usage) : 'no LLM configured');
        else if (text === '/reset') session.reset();
        else if (text.startsWith('/export')) {
          const file = resolve(text.slice(7).trim() || `transcripts/chat-${new Date().toISOString().slice(0, 19).replace(/[:T]/g, '-')}.md`);
          writeFileSync(file, session.toMarkdown());
          console.log(`wrote ${file}`);
        } else if (text.startsWith('/call ')) {
          const m = /^\/call\s+(\S+)\s*(.*)$/s.exec(text)!;
          const args = m[2].trim() ? JSON.parse(m[2]) : {};
          turn = new AbortController();
          const r = await session.callTool(m[1], args, { signal: turn.signal, onProgress: (p) => printer({ type: 'progress', id: 'call', name: m[1], ...p }) });
          console.log(r.ok ? r.text : `error: ${r.text}`);
        } else if (text.startsWith('/investigate ')) {
          turn = new AbortController();
          const r = await investigate({ question: text.slice(13).trim(), toolbox, dataDir, llm, signal: turn.signal, onEvent: printer });
          console.log(`${r.message}${r.report ? `\nreport: ${r.report.path ?? r.report.name}` : ''}`);
        } else if (text.startsWith('/')) err.write(`unknown command ${text.split(/\s/)[0]} in the line chat; /help lists them (the terminal chat's commands are in \`neuroscope start\`)\n`);
        else {
          turn = new AbortController();
          const r = await session.send(text, {
            signal: turn.signal,
            onToken: (d) => process.stdout.write(d),
            onToolStart: (e) => printer({ type: 'tool-start', ...e }),
            onToolRefused: (e) => printer({ type: 'tool-refused', ...e }),
            onNote: (n) => printer({ type: 'note', message: n }),
            onToolEnd: (e) => printer({ type: 'tool-end', id: e.id, name: e.name, ok: e.ok, ms: e.ms, text: e.text, experimentIds: e.experimentIds, runIds: e.runIds }),
            onProgress: (e) => printer({ type: 'progress', ...e }),
            onRetry: (e) => printer({ type: 'retry', ...e }),
          });
          process.stdout.write(r.aborted ? '\n[cancelled]\n' : '\n');
        }
      } catch (e) {
        err.write(`${e instanceof NoLlmError ? e.message : `error: ${(e as Error).message}`}\n`);
      } finally {
        turn = null;
      }
    }
  } finally {
    rl.close();
    if (session.usage) err.write(`LLM usage: ${formatUsage(session.usage)}\n`);
    await toolbox.close();
  }
  return 0;
}
