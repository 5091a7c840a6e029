// `neuroscope mcp`: opens the workspace (the given model, or the built-in gpt-oss-tiny) and serves
// it over stdio (desktop clients spawn it) or Streamable HTTP on 127.0.0.1.
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import type { Workspace } from '../tools/workspace.ts';
import { generateToken, startHttpServer } from './http.ts';
import { openDefaultWorkspace } from './in-process.ts';
import { createMcpServer, createSharedState, missingTools } from './server.ts';

export interface McpOptions {
  /** Built-in name ("tiny-s", "tiny-m") or checkpoint directory; default: DEFAULT_MODEL (tools/defaults.ts). */
  model?: string;
  /** Default: NEUROSCOPE_DATA or ./.neuroscope. */
  dataDir?: string;
  http?: boolean;
  port?: number;
  token?: string;
  threads?: number;
  allowedHosts?: string[];
  allowedOrigins?: string[];
  /** Accept /mcp/<token> as well as the Authorization header (for ChatGPT connectors). */
  pathToken?: boolean;
}

const log = (m: string) => process.stderr.write(`[neuroscope mcp] ${m}\n`);

function openShared(opts: McpOptions): { ws: Promise<Workspace> } {
  const ws = openDefaultWorkspace(opts).then((w) => {
    log(`model ${w.ctx.session.modelId} (${w.ctx.session.dir}); data ${w.dataDir}`);
    return w;
  });
  ws.catch((e) => log(`could not open the workspace: ${(e as Error).message}`));
  return { ws };
}

/** How long a shutdown waits for the cancelled call to end and the store to close before exiting anyway. */
export const SHUTDOWN_GRACE_MS = 10_000;

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/** Resolves with the first of SIGINT/SIGTERM/SIGHUP; a second signal exits at once. */
function firstSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (sig: NodeJS.Signals) => {
      for (const s of SIGNALS) process.off(s, on);
      // The store is crash-safe, so a second signal costs at most the call that was being cancelled.
      for (const s of SIGNALS) process.once(s, () => process.exit(128 + (s === 'SIGINT' ? 2 : s === 'SIGTERM' ? 15 : 1)));
      resolve(sig);
    };
    for (const s of SIGNALS) process.on(s, on);
  });
}

/**
 * Runs until the client disconnects (stdio) or the process is signalled (both modes). On a signal
 * the running call is cancelled (its writes roll back), the store is checkpointed and closed, and
 * the process exits. Returns the exit code.
 */
export async function runMcp(opts: McpOptions): Promise<number> {
  // stdout belongs to the protocol on stdio: anything else printed there would corrupt it.
  console.log = console.error;
  console.info = console.error;
  process.on('unhandledRejection', (e) => log(`unhandled rejection: ${(e as Error)?.stack ?? e}`));
  const signalled = firstSignal();
  const { ws } = openShared(opts);
  const shared = createSharedState(ws, { log });
  const missing = missingTools(shared.tools);
  if (missing.length) log(`tools not available yet: ${missing.join(', ')}`);

  /** Cancels the running call, closes what `closeFaces` closes, then the workspace (store checkpoint). */
  const shutdown = async (why: string, closeFaces: () => Promise<void>): Promise<void> => {
    log(`${why}: cancelling the running call and closing the store`);
    shared.stopping.abort();
    const done = (async () => {
      await closeFaces().catch(() => undefined);
      try {
        await (await ws).close();
      } catch {
        /* the workspace never opened */
      }
    })();
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((res) => (timer = setTimeout(() => res('late'), SHUTDOWN_GRACE_MS)));
    if ((await Promise.race([done.then(() => 'closed' as const), late])) === 'late') log(`the store did not close within ${SHUTDOWN_GRACE_MS} ms; exiting (committed work is safe in the write-ahead log)`);
    else log('store closed');
    clearTimeout(timer);
  };

  if (!opts.http) {
    const mcp = createMcpServer(shared);
    const transport = new StdioServerTransport();
    const disconnected = new Promise<string>((res) => {
      transport.onclose = () => res('client disconnected');
      process.stdin.once('end', () => res('client disconnected'));
      process.stdin.once('close', () => res('client disconnected'));
    });
    await mcp.connect(transport);
    log(`serving ${shared.tools.length} tools over stdio`);
    const why = await Promise.race([disconnected, signalled]);
    await shutdown(why, () => mcp.close());
    // stdin (and the engine's threads) would keep the process alive after a signal.
    if (why !== 'client disconnected') process.exit(0);
    return 0;
  }

  const token = opts.token ?? process.env.NEUROSCOPE_TOKEN ?? generateToken();
  const http = await startHttpServer(shared, { port: opts.port ?? 8765, token, allowedHosts: opts.allowedHosts, allowedOrigins: opts.allowedOrigins, pathToken: opts.pathToken });
  log(`serving ${shared.tools.length} tools on ${http.url}`);
  if (!opts.token && !process.env.NEUROSCOPE_TOKEN) log(`bearer token (generated): ${token}`);
  else log('bearer token: as given');
  if (opts.pathToken) log(`the token is also accepted in the path: ${http.url}/<token> (treat that URL as a password)`);
  // A line a parent process can wait for.
  process.stderr.write(`NEUROSCOPE_MCP_URL=${http.url}\n`);
  await shutdown(await signalled, () => http.close());
  return 0;
}
