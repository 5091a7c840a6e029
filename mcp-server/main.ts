// `neuroscope mcp`: opens the workspace (the given model, or the built-in gpt-oss-tiny) and serves
// it over stdio (desktop clients spawn it) or Streamable HTTP on 127.0.0.1.
import { resolve } from 'node:path';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { ensureDefaultModel } from '../engine/tiny/index.ts';
import { openWorkspace, type Workspace } from '../tools/workspace.ts';
import { generateToken, startHttpServer } from './http.ts';
import { createMcpServer, createSharedState, missingTools } from './server.ts';

export interface McpOptions {
  /** Built-in name ("tiny-s", "tiny-m") or checkpoint directory; default: the built-in tiny-s. */
  model?: string;
  dataDir: string;
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
  const dataDir = resolve(opts.dataDir);
  const ws = (async () => {
    const model = opts.model ?? ensureDefaultModel(dataDir);
    const w = await openWorkspace(model, dataDir, { threads: opts.threads });
    log(`model ${w.ctx.session.modelId} (${w.ctx.session.dir}); data ${w.dataDir}`);
    return w;
  })();
  ws.catch((e) => log(`could not open the workspace: ${(e as Error).message}`));
  return { ws };
}

/** Runs until the client disconnects (stdio) or the process is signalled (HTTP). Returns the exit code. */
export async function runMcp(opts: McpOptions): Promise<number> {
  // stdout belongs to the protocol on stdio: anything else printed there would corrupt it.
  console.log = console.error;
  console.info = console.error;
  process.on('unhandledRejection', (e) => log(`unhandled rejection: ${(e as Error)?.stack ?? e}`));
  const { ws } = openShared(opts);
  const shared = createSharedState(ws, { log });
  const missing = missingTools(shared.tools);
  if (missing.length) log(`tools not available yet: ${missing.join(', ')}`);

  const shutdown = async () => {
    try {
      await (await ws).close();
    } catch {
      /* the workspace never opened */
    }
  };

  if (!opts.http) {
    const mcp = createMcpServer(shared);
    const transport = new StdioServerTransport();
    const closed = new Promise<void>((res) => {
      transport.onclose = () => res();
      process.stdin.once('end', () => res());
      process.stdin.once('close', () => res());
    });
    await mcp.connect(transport);
    log(`serving ${shared.tools.length} tools over stdio`);
    await closed;
    await mcp.close().catch(() => undefined);
    await shutdown();
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
  await new Promise<void>((res) => {
    process.once('SIGINT', res);
    process.once('SIGTERM', res);
  });
  await http.close();
  await shutdown();
  return 0;
}
