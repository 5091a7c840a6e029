// The chat's link to NeuroScope's MCP server in this process (mcp-server/in-process.ts): the slash
// commands and the agent each hold a client of the same server state, so they call exactly the
// tools an outside MCP client would, through the same queue.
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { dataDirOrDefault } from '../../tools/defaults.ts';
import type { Workspace } from '../../tools/workspace.ts';
import { openInProcess } from '../../mcp-server/in-process.ts';
import type { SharedState } from '../../mcp-server/server.ts';

export interface InProcessOptions {
  /** "tiny-s", "tiny-m" or a checkpoint directory; default: DEFAULT_MODEL (tools/defaults.ts). */
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
  const dataDir = dataDirOrDefault(opts.dataDir);
  const host = openInProcess({ ...opts, dataDir });
  const client = await host.connect('neuroscope-chat');
  return { client, shared: host.shared, workspace: host.workspace, dataDir, newClient: host.connect, log: opts.log, close: host.close };
}
