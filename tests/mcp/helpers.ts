// Real MCP clients against a real `neuroscope mcp` process: over stdio (the client spawns it) and
// over Streamable HTTP (a child process on a free port).
import { spawn, type ChildProcess } from 'node:child_process';
import { join, resolve } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { writeRandomWordModel } from '../helpers/random-model.ts';

export const REPO = resolve(import.meta.dirname, '..', '..');
const BIN = join(REPO, 'bin', 'neuroscope.js');

export function makeModel(root: string): string {
  const dir = join(root, 'model');
  writeRandomWordModel(dir);
  return dir;
}

export interface StdioHandle {
  client: Client;
  stderr: () => string;
  close: () => Promise<void>;
}

export async function stdioClient(modelDir: string, dataDir: string): Promise<StdioHandle> {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [BIN, 'mcp', '--model', modelDir, '--data', dataDir, '--threads', '1'],
    cwd: REPO,
    stderr: 'pipe',
  });
  let err = '';
  transport.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const client = new Client({ name: 'neuroscope-test', version: '0' });
  await client.connect(transport);
  return { client, stderr: () => err, close: () => client.close() };
}

export interface HttpChild {
  url: string;
  token: string;
  proc: ChildProcess;
  stderr: () => string;
  stop: () => Promise<void>;
}

export async function startHttpChild(modelDir: string, dataDir: string, token: string): Promise<HttpChild> {
  const proc = spawn(process.execPath, [BIN, 'mcp', '--http', '--port', '0', '--model', modelDir, '--data', dataDir, '--threads', '1'], {
    cwd: REPO,
    env: { ...process.env, NEUROSCOPE_TOKEN: token },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  const url = await new Promise<string>((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`server did not start:\n${err}`)), 60_000);
    proc.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /NEUROSCOPE_MCP_URL=(\S+)/.exec(err);
      if (m) {
        clearTimeout(timer);
        res(m[1]);
      }
    });
    proc.once('exit', (code) => rej(new Error(`server exited with ${code}:\n${err}`)));
  });
  return {
    url,
    token,
    proc,
    stderr: () => err,
    stop: async () => {
      if (proc.exitCode !== null) return;
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await exited;
    },
  };
}

export async function httpClient(url: string, token: string): Promise<Client> {
  const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { Authorization: `Bearer ${token}` } } });
  const client = new Client({ name: 'neuroscope-http-test', version: '0' });
  await client.connect(transport);
  return client;
}

/** The text of a tool result. */
export function text(r: unknown): string {
  const content = (r as { content?: { type: string; text?: string }[] }).content ?? [];
  return content.map((c) => c.text ?? '').join('\n');
}

export const isError = (r: unknown) => (r as { isError?: boolean }).isError === true;

/** A token-aligned clean/corrupted pair of `n` word tokens differing at position `at`. */
export function pair(n: number, at: number): { clean: string; corrupted: string } {
  const words = Array.from({ length: n }, (_, i) => `w${(i * 7 + 1) % 60}`);
  const corrupted = [...words];
  corrupted[at] = 'w61';
  return { clean: words.join(' '), corrupted: corrupted.join(' ') };
}
