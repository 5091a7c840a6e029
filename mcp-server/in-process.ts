// The one in-process composition point: opens the workspace (model + store, with the defaults of
// tools/defaults.ts) and serves every client in this process (the chat's slash commands, its agent,
// `investigate`, the built-in protocols) from ONE server state, so all their calls go through one
// queue, the same one an outside client of this process would wait in. Each client gets its own
// MCP server object over the SDK's in-memory transport, exactly as an outside client would.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { dataDirOrDefault, modelOrDefault } from '../tools/defaults.ts';
import { openWorkspace, type Workspace } from '../tools/workspace.ts';
import { createMcpServer, createSharedState, type SharedState } from './server.ts';

export interface WorkspaceOptions {
  /** "tiny-s", "tiny-m", "tiny-l" or a checkpoint directory; default: DEFAULT_MODEL. */
  model?: string;
  /** Default: NEUROSCOPE_DATA or ./.neuroscope. */
  dataDir?: string;
  threads?: number;
}

/** Opens the workspace a command means: the given or default model over the given or default data directory. */
export function openDefaultWorkspace(opts: WorkspaceOptions = {}): Promise<Workspace> {
  return openWorkspace(modelOrDefault(opts.model), dataDirOrDefault(opts.dataDir), { threads: opts.threads });
}

export interface InProcessServer {
  /** Resolves once the model and store are open (rejects with the reason they could not be). */
  workspace: Promise<Workspace>;
  /** The server state every in-process client shares: its `mutex` is the one queue of tool calls. */
  shared: SharedState;
  /** One end of a new in-memory link to a fresh MCP server over the shared state; `close` ends both. */
  link: () => Promise<{ transport: Transport; close: () => Promise<void> }>;
  /** A connected SDK client of the shared state. */
  connect: (clientName: string) => Promise<Client>;
  /** Closes every link made here; when the workspace was opened here, cancels the running call and closes it too. */
  close: () => Promise<void>;
}

// One server state per workspace, found by the workspace or by the promise of it.
const servers = new WeakMap<object, InProcessServer>();

function serve(workspace: Promise<Workspace>, owned: boolean, log: (m: string) => void): InProcessServer {
  const shared = createSharedState(workspace, { log });
  const closers = new Set<() => Promise<void>>();
  const link = async () => {
    const server = createMcpServer(shared);
    const [mine, theirs] = InMemoryTransport.createLinkedPair();
    await server.connect(mine);
    const close = async () => {
      closers.delete(close);
      await theirs.close().catch(() => undefined);
      await server.close().catch(() => undefined);
    };
    closers.add(close);
    return { transport: theirs, close };
  };
  const host: InProcessServer = {
    workspace, shared, link,
    connect: async (clientName) => {
      const { transport, close } = await link();
      const client = new Client({ name: clientName, version: '0.1.0' });
      await client.connect(transport);
      closers.delete(close);
      closers.add(async () => {
        await client.close().catch(() => undefined);
        await close();
      });
      return client;
    },
    close: async () => {
      if (owned) shared.stopping.abort(); // a running call is cancelled (its writes roll back) so the store can close
      for (const c of [...closers]) await c();
      closers.clear();
      if (!owned) return;
      try {
        await (await workspace).close();
      } catch {
        /* it never opened */
      }
    },
  };
  servers.set(workspace, host);
  workspace.then((ws) => servers.set(ws, host), () => undefined);
  return host;
}

/**
 * Opens the workspace (after `gate`, so a UI can draw first: a first-use model build blocks) and
 * serves it in this process. `close` closes the workspace.
 */
export function openInProcess(opts: WorkspaceOptions & { gate?: Promise<void>; log?: (m: string) => void } = {}): InProcessServer {
  const workspace = (async () => {
    await opts.gate;
    return openDefaultWorkspace(opts);
  })();
  return serve(workspace, true, opts.log ?? (() => undefined));
}

/**
 * The in-process server of a workspace someone else opened (and closes): the one already serving it
 * when there is one, so its clients share that queue; `close` then ends only the links made here.
 */
export function serveWorkspace(workspace: Workspace | Promise<Workspace>, log: (m: string) => void = () => undefined): InProcessServer {
  const known = servers.get(workspace);
  if (known) return known;
  const host = serve(Promise.resolve(workspace), false, log);
  servers.set(workspace, host);
  return host;
}
