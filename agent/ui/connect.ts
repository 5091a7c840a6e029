// NeuroScope's MCP server in the same process as the chat: one shared workspace (model + store),
// one server per client over an in-memory transport. The slash commands and the agent each hold a
// client, so they call exactly the tools an outside MCP client would.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { resolve } from 'node:path';
import { ensureDefaultModel } from '../../engine/tiny/index.ts';
import { createMcpServer, createSharedState, type SharedState } from '../../mcp-server/server.ts';
import { openWorkspace, type Workspace } from '../../tools/workspace.ts';

export interface InProcessOptions {
  /** "tiny-s", "tiny-m" or a checkpoint directory; default: the built-in tiny-s. */
  model?: string;
  dataDir: string;
  threads?: number;
  /** Where server log lines go (default: dropped, the terminal belongs to the UI). */
  log?: (m: string) => void;
  /** The workspace opens once this resolves (so a UI can draw first: a first-use model build blocks). */
  gate?: Promise<void>;
}

export interface Connection {
  client: Client;
  shared: SharedState;
  workspace: Promise<Workspace>;
  dataDir: string;
  log?: (m: string) => void;
  /** Another client of the same server state (for the agent). */
  newClient: (name: string) => Promise<Client>;
  close: () => Promise<void>;
}

export async function connectInProcess(opts: InProcessOptions): Promise<Connection> {
  const dataDir = resolve(opts.dataDir);
  const log = opts.log ?? (() => undefined);
  const workspace = (async () => {
    await opts.gate;
    const model = opts.model ?? ensureDefaultModel(dataDir);
    return openWorkspace(model, dataDir, { threads: opts.threads });
  })();
  const shared = createSharedState(workspace, { log });
  const closers: (() => Promise<void>)[] = [];
  const newClient = async (name: string): Promise<Client> => {
    const server = createMcpServer(shared);
    const [ct, st] = InMemoryTransport.createLinkedPair();
    await server.connect(st);
    const client = new Client({ name, version: '0.1.0' });
    await client.connect(ct);
    closers.push(async () => {
      await client.close().catch(() => undefined);
      await server.close().catch(() => undefined);
    });
    return client;
  };
  const client = await newClient('neuroscope-chat');
  return {
    client, shared, workspace, dataDir, newClient, log,
    close: async () => {
      shared.stopping.abort(); // a running tool call is cancelled (its writes roll back) so the store can close
      for (const c of closers) await c();
      try {
        await (await workspace).close();
      } catch {
        /* never opened */
      }
    },
  };
}
