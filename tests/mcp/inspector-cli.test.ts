// The MCP Inspector's own CLI (`mcp-inspector-cli --cli`, the client behind `npx @modelcontextprotocol/inspector --cli`)
// against a real `neuroscope mcp` on gpt-oss-tiny, over stdio (it spawns the server) and over
// Streamable HTTP (with and without the bearer token): a second real client besides the SDK's.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTinyModel, type Manifest } from '../../engine/tiny/index.ts';
import { TOOLS } from '../../tools/index.ts';
import { byLength, ioiPatchingSet } from '../../tools/prompt-sets.ts';
import { REPO, startHttpChild, type HttpChild } from './helpers.ts';

const run = promisify(execFile);
const CLI = join(REPO, 'node_modules', '@modelcontextprotocol', 'inspector-cli', 'build', 'cli.js');
const BIN = join(REPO, 'bin', 'neuroscope.js');
const root = mkdtempSync(join(tmpdir(), 'ns-inspector-'));
const modelDir = join(root, 'model');
const dataDir = join(root, 'data');
const TOKEN = 'inspector-test-token-0123456789abcdef';
let manifest: Manifest;
let http: HttpChild;

/** Runs the Inspector CLI; resolves to its parsed JSON stdout, or rejects with its stderr. */
async function inspector(target: string[], args: string[]): Promise<Record<string, unknown>> {
  // cwd: the Inspector looks for "../package.json" relative to the working directory before
  // importing it relative to its own module; from a folder one level below a package it finds one.
  const { stdout } = await run(process.execPath, [CLI, '--cli', ...target, ...args], { cwd: join(REPO, 'tests'), timeout: 120_000, maxBuffer: 16 << 20 });
  return JSON.parse(stdout) as Record<string, unknown>;
}
const stdio = () => [process.execPath, BIN, 'mcp', '--model', modelDir, '--data', dataDir, '--threads', '1'];
const textOf = (r: Record<string, unknown>) => (r.content as { text: string }[]).map((c) => c.text).join('\n');

beforeAll(async () => {
  manifest = buildTinyModel('tiny-s', 23, modelDir, 'clean');
});
afterAll(async () => {
  await http?.stop();
  rmSync(root, { recursive: true, force: true });
});

describe('MCP Inspector CLI over stdio', () => {
  it('lists every tool, resource template and prompt', async () => {
    const tools = (await inspector(stdio(), ['--method', 'tools/list'])).tools as { name: string; inputSchema: { type: string } }[];
    expect(tools.map((t) => t.name).sort()).toEqual(TOOLS.map((t) => t.name).sort());
    expect(tools.every((t) => t.inputSchema.type === 'object')).toBe(true);
    const prompts = (await inspector(stdio(), ['--method', 'prompts/list'])).prompts as { name: string }[];
    expect(prompts.length).toBe(5);
    const templates = (await inspector(stdio(), ['--method', 'resources/templates/list'])).resourceTemplates as { uriTemplate: string }[];
    expect(templates.map((t) => t.uriTemplate).join(' ')).toContain('neuroscope://');
  });

  it('finds the planted name mover with a head patching sweep, then reads the stored rows back with SQL', async () => {
    const set = ioiPatchingSet(byLength(manifest.tasks.ioi.examples)[0].slice(0, 4), 'io_swap');
    const r = await inspector(stdio(), [
      '--method', 'tools/call', '--tool-name', 'patch_activations',
      '--tool-arg', `clean=${JSON.stringify(set.clean)}`, `corrupted=${JSON.stringify(set.corrupted)}`,
      `target=${JSON.stringify(set.target)}`, `distractor=${JSON.stringify(set.distractor)}`, 'site=head',
    ]);
    expect(r.isError).toBeFalsy();
    const text = textOf(r);
    const head = r.structuredContent as { experimentId: string; clean: number; top: { site: string; effect: number }[] };
    expect(head.clean).toBeGreaterThan(2);
    expect(manifest.roles['ioi.name_mover']).toContain(head.top[0].site);
    expect(head.top[0].effect).toBeGreaterThan(0.5);
    // The text for language models is made from the same object: the top table's first row names the same head.
    const firstTop = /top \(\d+ rows?\):\n\|[^\n]*\n\|[^\n]*\n\| (\S+) \| (\S+) \|/.exec(text)!;
    expect(firstTop[1]).toBe(head.top[0].site);

    // A fresh server process on the same store file finds the experiment's rows.
    const sql = `SELECT site, round(effect, 3) AS e FROM results WHERE experiment_id = '${head.experimentId}' ORDER BY effect DESC LIMIT 1`;
    const q = await inspector(stdio(), ['--method', 'tools/call', '--tool-name', 'query_activations', '--tool-arg', `sql=${sql}`]);
    expect(q.isError).toBeFalsy();
    expect((q.structuredContent as { rows: unknown[][] }).rows[0][0]).toBe(head.top[0].site);
  });

  it('gets a clear tool error for an unknown hook, and a refusal for SQL that writes', async () => {
    const bad = await inspector(stdio(), ['--method', 'tools/call', '--tool-name', 'capture_activations', '--tool-arg', 'prompts=["When Mary"]', 'hooks=["blocks.0.hook_nope"]']);
    expect(bad.isError).toBe(true);
    expect(textOf(bad)).toMatch(/hook/i);
    const write = await inspector(stdio(), ['--method', 'tools/call', '--tool-name', 'query_activations', '--tool-arg', 'sql=DROP TABLE runs']);
    expect(write.isError).toBe(true);
    expect(textOf(write)).toMatch(/read/i);
  });
});

describe('MCP Inspector CLI over Streamable HTTP', () => {
  beforeAll(async () => {
    http = await startHttpChild(modelDir, join(root, 'data-http'), TOKEN);
  });

  it('lists and calls tools with the bearer token', async () => {
    const target = [http.url, '--transport', 'http', '--header', `Authorization: Bearer ${TOKEN}`];
    const tools = (await inspector(target, ['--method', 'tools/list'])).tools as { name: string }[];
    expect(tools.length).toBe(TOOLS.length);
    const info = await inspector(target, ['--method', 'tools/call', '--tool-name', 'model_info']);
    expect(info.isError).toBeFalsy();
    expect(textOf(info)).toContain(`architecture.layers: ${manifest.architecture.num_hidden_layers}`);
    expect((info.structuredContent as { architecture: { layers: number } }).architecture.layers).toBe(manifest.architecture.num_hidden_layers);
  });

  it('is refused without the token', async () => {
    await expect(inspector([http.url, '--transport', 'http'], ['--method', 'tools/list'])).rejects.toThrow(/Unauthorized: send \\"Authorization: Bearer <token>\\"/);
  });
});
