// The one in-process composition point (mcp-server/in-process.ts): the chat's client, the agent's
// toolbox (connected by the workspace promise, as the chat's agent link does) and a toolbox connected
// by the opened workspace itself all wait in ONE queue of tool calls.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { McpToolbox } from '../../agent/mcp.ts';
import { buildTinyModel } from '../../engine/tiny/index.ts';
import { openInProcess, serveWorkspace, type InProcessServer } from '../../mcp-server/in-process.ts';

const root = mkdtempSync(join(tmpdir(), 'ns-in-process-'));
let host: InProcessServer;
let chat: Client;
let agent: McpToolbox;
let script: McpToolbox;

beforeAll(async () => {
  buildTinyModel('tiny-s', 5, join(root, 'model'), 'clean');
  host = openInProcess({ model: join(root, 'model'), dataDir: join(root, 'data'), threads: 1 });
  chat = await host.connect('chat');
  agent = await McpToolbox.connect({ kind: 'in-process', workspace: host.workspace });
  script = await McpToolbox.connect({ kind: 'in-process', workspace: await host.workspace });
});

afterAll(async () => {
  await agent?.close();
  await script?.close();
  await host?.close();
  rmSync(root, { recursive: true, force: true });
});

it('finds the one server of a workspace by the workspace or by its promise', async () => {
  expect(serveWorkspace(host.workspace)).toBe(host);
  expect(serveWorkspace(await host.workspace)).toBe(host);
});

it('serialises calls from three in-process clients through the same queue', async () => {
  // Hold the queue (as a suite run from the chat does), then call from every client.
  let release!: () => void;
  const held = host.shared.mutex.run(() => new Promise<void>((r) => (release = r)));
  const done: string[] = [];
  const fromChat = chat.callTool({ name: 'model_info', arguments: {} }).then((r) => (done.push('chat'), r));
  const fromToolboxes = [
    agent.call('tokenize', { text: 'the cat' }).then((r) => (done.push('agent'), r)),
    script.call('model_info', {}).then((r) => (done.push('script'), r)),
  ];
  // All three wait behind the holder in the one queue, and none has run.
  await vi.waitFor(() => expect(host.shared.mutex.pending).toBe(4), { timeout: 60_000, interval: 20 });
  expect(done).toEqual([]);
  release();
  await held;
  const c = await fromChat;
  const [a, s] = await Promise.all(fromToolboxes);
  expect(c.isError).toBeFalsy();
  expect(a.ok).toBe(true);
  expect(s.ok).toBe(true);
  expect(done.sort()).toEqual(['agent', 'chat', 'script']);
  expect(host.shared.mutex.pending).toBe(0);
});

it('a toolbox over the workspace closes only its own link, not the workspace', async () => {
  const extra = await McpToolbox.connect({ kind: 'in-process', workspace: host.workspace });
  await extra.close();
  const r = await agent.call('model_info', {});
  expect(r.ok).toBe(true);
});
