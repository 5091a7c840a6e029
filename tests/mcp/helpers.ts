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

/** The typed result of a tool call (structuredContent, which the SDK client checked against the tool's outputSchema). */
export function data(r: unknown): Record<string, any> {
  const s = (r as { structuredContent?: Record<string, unknown> }).structuredContent;
  if (!s) throw new Error(`no structuredContent in the result: ${text(r).slice(0, 400)}`);
  return s;
}

/** A token-aligned clean/corrupted pair of `n` word tokens differing at position `at`. */
export function pair(n: number, at: number): { clean: string; corrupted: string } {
  const words = Array.from({ length: n }, (_, i) => `w${(i * 7 + 1) % 60}`);
  const corrupted = [...words];
  corrupted[at] = 'w61';
  return { clean: words.join(' '), corrupted: corrupted.join(' ') };
}

/**
 * One valid call of every tool on the random word-level model of makeModel (3 layers, words w0..),
 * in an order where each call's inputs exist (similarity_search reads a vector steer stored).
 */
export function validCalls(modelDir: string): [string, Record<string, unknown>][] {
  const { clean, corrupted } = pair(6, 3);
  const task = { target: 'w2', distractor: 'w3' };
  const prompts = ['w1 w2 w3 w4', 'w5 w6 w7 w8', 'w9 w10 w11 w12', 'w13 w14 w15 w16', 'w2 w4 w6 w8', 'w1 w3 w5 w7'];
  return [
    ['model_info', {}],
    ['list_hooks', {}],
    ['tokenize', { text: 'w1 w2' }],
    ['generate', { prompt: 'w1 w2', maxNewTokens: 2 }],
    ['capture_activations', { prompts: [clean], hooks: ['blocks.0.hook_resid_post'] }],
    ['patch_activations', { clean: [clean], corrupted: [corrupted], ...task, site: 'head' }],
    ['path_patch', { clean: [clean], corrupted: [corrupted], ...task, receivers: ['L2.H0'] }],
    ['ablate', { prompts: [clean], ...task, components: ['L1.H0'] }],
    ['steer', { prompts: [clean], ...task, vector: { positive: ['w1 w2'], negative: ['w3 w4'] }, layer: 1, coefficients: [0, 1], generateTokens: 0, saveAs: 'every_tool' }],
    ['train_probe', { examples: prompts.map((prompt, i) => ({ prompt, label: i % 2 ? 'odd' : 'even' })), layers: [1] }],
    ['pca', { prompts, layer: 1, components: 2 }],
    ['logit_lens', { prompts: [clean], target: 'w2' }],
    ['direct_logit_attribution', { prompts: [clean], ...task }],
    ['attention_patterns', { prompts: [clean], layers: [0], heads: [0], query: -1 }],
    ['expert_routing', { prompts: [clean] }],
    ['similarity_search', { query: { name: 'every_tool' }, k: 3 }],
    ['neuron_selectivity', { domains: { a: prompts.slice(0, 3), b: prompts.slice(3) } }],
    ['train_sae', { hook: 'blocks.1.hook_resid_post', prompts, dSae: 32, k: 4, steps: 20, saeId: 'every_tool' }],
    ['attach_sae', { saeId: 'every_tool' }],
    ['feature_dashboard', { saeId: 'every_tool', latent: 0, prompts }],
    ['feature_search', { saeId: 'every_tool', classes: { a: prompts.slice(0, 3), b: prompts.slice(3) } }],
    ['feature_intervention', { saeId: 'every_tool', prompts: [clean], ...task, latents: [0, 1], action: 'steer', coefficient: 2 }],
    ['find_circuit', { clean: [clean], corrupted: [corrupted], ...task, include: ['heads'] }],
    ['query_activations', { sql: 'SELECT count(*) AS n FROM runs' }],
    ['describe_store', {}],
    ['write_finding', { name: 'every-tool', markdown: '# Every tool\n\nAll of them answered.' }],
    ['list_findings', {}],
    ['load_model', { model: modelDir }],
  ];
}
