// The MCP server's parts without a model: experiment templates, the call queue, result formatting,
// request limits, finding names; and the default model when no --model is given.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { renderResult, TEXT_COLS, TEXT_ROWS } from '../../mcp-server/render.ts';
import { resultParts } from '../../tools/result-parts.ts';
import { CancelledWhileQueued, Mutex } from '../../mcp-server/mutex.ts';
import { loadExperimentPrompts, parsePromptTemplate, renderPrompt } from '../../mcp-server/prompts.ts';
import { missingTools, PLANNED_TOOLS } from '../../mcp-server/server.ts';
import { checkFindingName } from '../../tools/findings.ts';
import { callTool, generateTool, loadModelTool, modelInfoTool } from '../../tools/index.ts';
import { checkRequestSize, checkToolLimits, LIMITS } from '../../tools/limits.ts';
import { openWorkspace } from '../../tools/workspace.ts';
import { wordLevelTokenizerJson } from '../../engine/tokenizer.ts';
import { writeRandomWordModel } from '../helpers/random-model.ts';
import { REPO, text } from './helpers.ts';

describe('experiment templates', () => {
  it('the five templates parse, declare every placeholder and name the tools to call', () => {
    const ps = loadExperimentPrompts();
    expect(ps.map((p) => p.name)).toEqual(['causal-tracing', 'circuit-growth', 'cross-domain-entanglement', 'feature-localisation', 'multi-token-steering']);
    for (const p of ps) {
      expect(p.title.length).toBeGreaterThan(5);
      expect(p.description.length).toBeGreaterThan(20);
      expect(p.arguments.some((a) => a.required)).toBe(true);
      const full = Object.fromEntries(p.arguments.map((a) => [a.name, `<${a.name}>`]));
      const out = renderPrompt(p, full);
      expect(out).not.toMatch(/\{\{/);
      for (const a of p.arguments) expect(out).toContain(`<${a.name}>`);
      expect(out).toMatch(/write_finding/);
      expect(out).toMatch(/`(patch_activations|capture_activations|steer)`/);
    }
  });

  it('optional arguments fall back to their defaults; missing required ones are named', () => {
    const p = parsePromptTemplate('t', '---\ntitle: T\ndescription: d\narguments:\n  a: required | the a\n  b: optional = bee | the b\n---\n{{a}} and {{b}}\n');
    expect(renderPrompt(p, { a: 'x' })).toBe('x and bee\n');
    expect(() => renderPrompt(p, {})).toThrow(/needs the argument "a"/);
    expect(() => parsePromptTemplate('u', '---\ntitle: U\n---\n{{nope}}')).toThrow(/not a declared argument/);
  });
});

describe('call queue', () => {
  it('runs calls one at a time in arrival order, and a call cancelled while queued leaves at once', async () => {
    const m = new Mutex();
    const log: string[] = [];
    const slow = (name: string, ms: number) => async () => {
      log.push(`${name} start`);
      await new Promise((r) => setTimeout(r, ms));
      log.push(`${name} end`);
      return name;
    };
    const ac = new AbortController();
    const a = m.run(slow('a', 60));
    const b = m.run(slow('b', 10), ac.signal);
    const c = m.run(slow('c', 10));
    setTimeout(() => ac.abort(), 10);
    await expect(b).rejects.toBeInstanceOf(CancelledWhileQueued);
    expect(await a).toBe('a');
    expect(await c).toBe('c');
    expect(log).toEqual(['a start', 'a end', 'c start', 'c end']);
    expect(m.pending).toBe(0);
  });
});

describe('result text rendering', () => {
  const result = {
    experimentId: 'exp_1',
    clean: 2.123456789,
    grid: { rows: { name: 'layer', labels: ['L0', 'L1'] }, cols: { name: 'position', labels: ['P0', 'P1'] }, values: [[1, 0.358041], [-0.25, null]] },
    top: [{ site: 'L0 P0', effect: 1 }],
    ids: Array.from({ length: 120 }, (_, i) => `run_${i}`),
  };
  it('renders values as lines, lists inline, records and grids as tables with their axes, one layout for any size', () => {
    const out = renderResult(result);
    expect(out).toContain('clean: 2.12346');
    expect(out).toContain('grid (layer x position, 2 x 2):\n| layer \\\\ position | P0 | P1 |\n|---|---|---|\n| L0 | 1 | 0.358041 |\n| L1 | -0.25 | – |');
    // A one-row list of records is a table like any other.
    expect(out).toContain('top (1 row):\n| site | effect |\n|---|---|\n| L0 P0 | 1 |');
    // A long list of run ids is counted, with its ends and where all of them are.
    expect(out).toContain('ids: 120 runs (run_0, run_1, … run_119); structuredContent.ids has all of them');
  });
  it('summarises long tables and grids with counts and where to read the rest, never cutting silently', () => {
    const big = renderResult({
      experimentId: 'exp_9',
      grid: { rows: { name: 'layer', labels: Array.from({ length: 50 }, (_, i) => `L${i}`) }, cols: { name: 'head', labels: Array.from({ length: 40 }, (_, i) => `H${i}`) }, values: Array.from({ length: 50 }, () => Array(40).fill(0)) },
      top: Array.from({ length: 45 }, (_, i) => ({ site: `s${i}`, effect: i })),
    });
    expect(big).toContain('grid (layer x head, 50 x 40):');
    expect(big).toContain(`… ${50 - TEXT_ROWS} more layer rows and ${40 - TEXT_COLS} more head columns; structuredContent.grid has all of them; every stored row: query_activations {"sql": "SELECT * FROM results WHERE experiment_id = 'exp_9'"}`);
    expect(big).toContain(`top (45 rows):`);
    expect(big).toContain(`… ${45 - TEXT_ROWS} more rows; structuredContent.top has all of them`);
    expect(big.split('\n').filter((l) => l.startsWith('| L')).length).toBe(TEXT_ROWS);
  });
  it('splits a result into the same parts for every face', () => {
    expect(resultParts(result).map((p) => `${p.kind}:${p.path}`)).toEqual(['value:experimentId', 'value:clean', 'grid:grid', 'table:top', 'list:ids']);
  });
});

describe('request limits', () => {
  const model = { numLayers: 4, countTokens: (t: string) => t.split(/\s+/).filter(Boolean).length };
  it('refuses oversized requests before parsing, whatever the tool', () => {
    expect(() => checkRequestSize('x', { sql: 'x'.repeat(LIMITS.maxStringChars + 1) })).toThrow(/maxStringChars/);
    expect(() => checkRequestSize('x', { a: 'x'.repeat(LIMITS.maxRequestBytes) })).toThrow(/maxRequestBytes/);
    expect(() => checkRequestSize('x', 'not an object')).not.toThrow();
  });
  it('checks the sizes a tool declares, naming the limit, and lets ordinary calls through', () => {
    const capture = { prompts: ['prompts'], sweep: { batch: ['prompts'], hooks: 'hooks', positions: 'positions' } } as const;
    expect(() => checkToolLimits('capture_activations', capture, { prompts: ['a b c'], hooks: ['blocks.*.hook_resid_post'] }, model)).not.toThrow();
    expect(() => checkToolLimits('x', capture, { prompts: Array(LIMITS.maxPromptsPerCall + 1).fill('a') }, model)).toThrow(/limit maxPromptsPerCall = 512/);
    // Only the declared paths are prompts: the same list under another key is not counted.
    expect(() => checkToolLimits('x', capture, { other: Array(LIMITS.maxPromptsPerCall + 1).fill('a') }, model)).not.toThrow();
    expect(() => checkToolLimits('x', { prompts: ['clean'] }, { clean: Array(10).fill(Array(4000).fill('w').join(' ')) }, model)).toThrow(/maxTokensPerCall/);
    expect(() => checkToolLimits('x', { prompts: ['vector.positive'] }, { vector: { positive: Array(600).fill('a') } }, model)).toThrow(/600 prompts/);
    expect(() => checkToolLimits('x', { prompts: ['examples.*.prompt'] }, { examples: Array(600).fill({ prompt: 'a', label: 'b' }) }, model)).toThrow(/600 prompts/);
    const sweep = { prompts: ['prompts'], sweep: { batch: ['prompts'], layers: ['layers'], positions: 'positions' } };
    expect(() => checkToolLimits('x', sweep, { prompts: ['a'], layers: Array(1000).fill(0), positions: Array(1000).fill(0) }, model)).toThrow(/layers x positions x batch = 1000 x 1000 x 1/);
    expect(() => checkToolLimits('x', { maxPrompts: 2, prompts: ['prompts'] }, { prompts: ['a', 'b', 'c'] }, model)).toThrow(/limit x\.maxPrompts = 2/);
    expect(() => checkToolLimits('ablate', { sites: { components: 3 } }, { components: ['L0.H0', 'L0.H1', 'L0.H2', 'L0.H3'] }, model)).toThrow(/components has 4 entries; give at most 3 in one call \(limit ablate\.components = 3/);
  });
});

describe('finding names', () => {
  it('accepts plain names and refuses anything that could leave the folder', () => {
    expect(checkFindingName('ioi-name-movers')).toBe('ioi-name-movers');
    expect(checkFindingName('v2.1_result.md')).toBe('v2.1_result');
    for (const bad of ['..', '../x', 'a/b', 'a\\b', '/abs', '.dot', '', 'a..b', 'x'.repeat(101), 'é', 'a b', 'nul\u0000']) {
      expect(() => checkFindingName(bad), bad).toThrow(/not allowed/);
    }
  });
});

describe('tool coverage', () => {
  it('reports the planned tools that TOOLS does not have yet', () => {
    const missing = missingTools();
    for (const m of missing) expect(PLANNED_TOOLS as readonly string[]).toContain(m);
    expect(missing).not.toContain('model_info');
    expect(missing).not.toContain('query_activations');
  });
});

describe('default model', () => {
  it('without --model the server loads the built-in gpt-oss-tiny (built into the data dir)', async () => {
    const root = mkdtempSync(join(tmpdir(), 'ns-mcp-default-'));
    const { StdioClientTransport } = await import('@modelcontextprotocol/sdk/client/stdio.js');
    const { Client } = await import('@modelcontextprotocol/sdk/client/index.js');
    const transport = new StdioClientTransport({ command: process.execPath, args: [join(REPO, 'bin', 'neuroscope.js'), 'mcp', '--data', join(root, 'data'), '--threads', '1'], cwd: REPO, stderr: 'pipe' });
    const client = new Client({ name: 't', version: '0' });
    try {
      await client.connect(transport);
      const r = await client.callTool({ name: 'model_info', arguments: {} });
      const info = r.structuredContent as { modelId: string; builtIn: unknown };
      expect(info.modelId).toBe('tiny-s-seed0');
      expect(info.builtIn).toEqual({ model: 'tiny-s', seed: 0 });
      expect(text(r)).toContain('modelId: tiny-s-seed0');
    } finally {
      await client.close();
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('model tools in process', () => {
  it('load_model swaps the shared model; generate speaks harmony when the tokenizer has its markers', async () => {
    const root = mkdtempSync(join(tmpdir(), 'ns-mcp-harmony-'));
    try {
      writeRandomWordModel(join(root, 'plain'));
      // A 64-token word-level vocabulary that has the harmony markers as special tokens.
      const harmonyDir = join(root, 'harmony');
      writeRandomWordModel(harmonyDir, 5);
      const specials = ['[UNK]', '<|start|>', '<|end|>', '<|message|>', '<|channel|>', '<|return|>', '<|call|>', '<|constrain|>'];
      const words = Array.from({ length: 64 - specials.length }, (_, i) => `w${i}`);
      writeFileSync(join(harmonyDir, 'tokenizer.json'), JSON.stringify(wordLevelTokenizerJson(words, specials)));
      const ws = await openWorkspace(join(root, 'plain'), join(root, 'data'), { threads: 1 });
      try {
        const refused = callTool(generateTool, { prompt: 'w1', harmony: true }, ws.ctx);
        await expect(refused).rejects.toThrow(/harmony markers/);
        const loaded = await callTool(loadModelTool, { model: harmonyDir }, ws.ctx);
        expect(loaded.previous).toBe('plain');
        expect(ws.ctx.session.modelId).toBe('harmony');
        const info = await callTool(modelInfoTool, {}, { ...ws.ctx });
        expect(info.tokenizer.harmony).toBe(true);
        const g = await callTool(generateTool, { prompt: 'w1 w2', harmony: true, maxNewTokens: 4, temperature: 1, seed: 3 }, { ...ws.ctx });
        expect(g.newTokens.length).toBeGreaterThan(0);
        expect(Array.isArray(g.messages) || typeof g.parseError === 'string').toBe(true);
        const run = await ws.ctx.store.getRun(g.runId);
        expect(run!.prompt).toMatch(/^<\|start\|>system<\|message\|>/);
        expect(run!.prompt).toContain('<|start|>user<|message|>w1 w2<|end|><|start|>assistant');
        expect(run!.tokenIds.length).toBe(g.promptTokens + g.newTokens.length);
      } finally {
        await ws.close();
      }
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
