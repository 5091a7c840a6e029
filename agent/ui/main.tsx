// `neuroscope start` on a terminal: the Ink chat over the in-process MCP server.
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { render } from 'ink';
import React from 'react';
import { TINY_SIZES, type TinySize } from '../../engine/tiny/index.ts';
import { DEFAULT_MODEL } from '../../tools/defaults.ts';
import { linkAgent } from './agent-link.ts';
import { App } from './App.tsx';
import { connectInProcess } from './connect.ts';
import { ChatController } from './controller.ts';

export interface ChatOptions {
  model?: string;
  dataDir: string;
  threads?: number;
  transcriptsDir?: string;
  llmModel?: string;
  baseURL?: string;
}

const HISTORY_MAX = 500;

export function loadHistory(file: string): string[] {
  if (!existsSync(file)) return [];
  const out: string[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line) continue;
    try {
      const s = JSON.parse(line);
      if (typeof s === 'string') out.push(s);
    } catch {
      /* a torn line */
    }
  }
  return out.slice(-HISTORY_MAX);
}

export async function runChat(opts: ChatOptions): Promise<number> {
  const dataDir = resolve(opts.dataDir);
  mkdirSync(dataDir, { recursive: true });
  const logFile = join(dataDir, 'chat.log');
  const log = (m: string) => {
    try {
      appendFileSync(logFile, `${new Date().toISOString()} ${m}\n`);
    } catch {
      /* logging must never break the chat */
    }
  };
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const conn = await connectInProcess({ model: opts.model, dataDir, threads: opts.threads, log, gate });
  // The chat's one MCP toolbox over the connection's client: slash commands, the agent and /investigate
  // all call through it. Loaded after the first frame (the LangChain adapters take seconds to import).
  const toolbox = import('../mcp.ts').then(({ McpToolbox }) => McpToolbox.fromClient(conn.client, 'in-process NeuroScope MCP server'));
  const link = linkAgent(toolbox, conn.dataDir, { llmModel: opts.llmModel, baseURL: opts.baseURL });
  let instance: ReturnType<typeof render> | null = null;
  const ctl = new ChatController({ conn, toolbox, agent: link.agent, investigator: link.investigate, llmLabel: link.label, transcriptsDir: opts.transcriptsDir });
  const historyFile = join(dataDir, 'chat-history.jsonl');
  const history = loadHistory(historyFile);
  if (history.length >= HISTORY_MAX * 2) writeFileSync(historyFile, history.map((h) => JSON.stringify(h)).join('\n') + '\n');
  const onHistory = (entry: string) => {
    try {
      appendFileSync(historyFile, `${JSON.stringify(entry)}\n`);
    } catch {
      /* history is a convenience */
    }
  };
  // /clear: wipe the terminal too (printed items cannot be taken back otherwise).
  let epoch = 0;
  ctl.subscribe(() => {
    const s = ctl.getSnapshot();
    if (s.epoch !== epoch) {
      epoch = s.epoch;
      instance?.clear();
      process.stdout.write('\x1b[2J\x1b[3J\x1b[H');
    }
  });
  process.on('unhandledRejection', (e) => log(`unhandled rejection: ${(e as Error)?.stack ?? e}`));
  // A closed terminal or a kill: close the store properly (DuckDB checkpoints on close); the session log is already on disk.
  const onSignal = (sig: NodeJS.Signals) => {
    log(`${sig}: closing`);
    ctl.quit();
  };
  for (const sig of ['SIGHUP', 'SIGTERM'] as const) process.once(sig, onSignal);
  instance = render(<App controller={ctl} history={history} onHistory={onHistory} />, { exitOnCtrlC: false });
  // Open the model after the first frame is on screen (a first-use build of the built-in model takes a while).
  const model = opts.model ?? DEFAULT_MODEL;
  const building = TINY_SIZES.includes(model as TinySize) && !existsSync(join(dataDir, 'models', `${model}-seed0`, 'manifest.json'));
  const started = Date.now();
  if (building) ctl.note(`Building the built-in model **${model}** (first use only; a few seconds)…`);
  setTimeout(release, 150);
  void ctl.init().then(() => {
    if (building && existsSync(join(dataDir, 'models', `${model}-seed0`, 'manifest.json'))) ctl.note(`Built **${model}** in ${((Date.now() - started) / 1000).toFixed(1)} s.`, 'success');
  });
  await instance.waitUntilExit();
  await conn.close().catch((e) => log(`close: ${(e as Error).message}`));
  process.stdout.write(`\nSession saved: ${ctl.log.file}\nMarkdown: /export in the chat, or  neuroscope transcript export ${ctl.log.id}\n`);
  return 0;
}
