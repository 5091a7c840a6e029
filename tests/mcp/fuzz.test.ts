// Property-based fuzzing of tool arguments through the real MCP client: malformed input (wrong
// types, huge numbers, random strings, unknown keys, near-misses of valid calls) always gives a
// result (isError with a clear message, or a valid answer), and the server keeps serving.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isError, makeModel, pair, stdioClient, text, type StdioHandle } from './helpers.ts';

const root = mkdtempSync(join(tmpdir(), 'ns-mcp-fuzz-'));
let h: StdioHandle;
let tools: { name: string; keys: string[]; examples: Record<string, unknown>[] }[] = [];

beforeAll(async () => {
  h = await stdioClient(makeModel(root), join(root, 'data'));
  const listed = await h.client.listTools();
  tools = listed.tools.map((t) => ({
    name: t.name,
    keys: Object.keys(t.inputSchema.properties ?? {}),
    examples: ((t.inputSchema as { examples?: Record<string, unknown>[] }).examples ?? []),
  }));
});
afterAll(async () => {
  await h?.close();
  rmSync(root, { recursive: true, force: true });
});

const { clean, corrupted } = pair(6, 3);
/** Valid calls of the research tools on the random model, to mutate. */
const BASES: Record<string, Record<string, unknown>> = {
  capture_activations: { prompts: [clean], hooks: ['blocks.0.hook_resid_post'] },
  patch_activations: { clean: [clean], corrupted: [corrupted], target: 'w2', distractor: 'w3', site: 'resid_pre', layers: [0] },
  path_patch: { clean: [clean], corrupted: [corrupted], target: 'w2', distractor: 'w3', receivers: ['L2.H0'] },
  ablate: { prompts: [clean], target: 'w2', distractor: 'w3', components: ['L1.H0'] },
  steer: { prompts: [clean], target: 'w2', distractor: 'w3', vector: { positive: ['w1 w2'], negative: ['w3 w4'] }, layer: 1, coefficients: [0, 1], generateTokens: 0 },
  query_activations: { sql: 'SELECT count(*) FROM runs' },
  tokenize: { text: 'w1 w2' },
  generate: { prompt: 'w1 w2', maxNewTokens: 2 },
  write_finding: { name: 'fuzz', markdown: '# fuzz' },
};

const junk: fc.Arbitrary<unknown> = fc.letrec<{ v: unknown }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small' },
    fc.string({ maxLength: 24 }),
    fc.string({ unit: 'grapheme', maxLength: 12 }),
    fc.integer(),
    fc.double(),
    fc.constantFrom(1e308, -1e308, 2 ** 53, 2 ** 31, -1, 0, 1e9, Number.MAX_SAFE_INTEGER, '', '../../etc/passwd', 'DROP TABLE runs', 'blocks.*.hook_resid_post', 'L99.H99', 'all'),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('v'), { maxLength: 4 }),
    fc.dictionary(fc.string({ maxLength: 8 }), tie('v'), { maxKeys: 3 }),
  ),
})).v;

function expectClear(r: unknown, context: string): void {
  const t = text(r);
  expect(t.length, context).toBeGreaterThan(0);
  if (isError(r)) {
    expect(t.length, context).toBeGreaterThan(10);
    expect(t, context).not.toMatch(/\[object Object\]|Cannot read properties|is not a function|undefined is not|Maximum call stack/);
  }
}

describe('fuzzing tool arguments over MCP', () => {
  it('random arguments for every tool give results, never crashes', async () => {
    const names = tools.map((t) => t.name).filter((n) => n !== 'load_model');
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...names).chain((name) => {
          const keys = tools.find((t) => t.name === name)!.keys;
          const key = keys.length ? fc.oneof(fc.constantFrom(...keys), fc.string({ maxLength: 10 })) : fc.string({ maxLength: 10 });
          return fc.tuple(fc.constant(name), fc.dictionary(key, junk, { maxKeys: 5 }));
        }),
        async ([name, args]) => {
          const r = await h.client.callTool({ name, arguments: args });
          expectClear(r, `${name} ${JSON.stringify(args).slice(0, 300)}`);
        },
      ),
      { numRuns: 150, seed: 20260525 },
    );
  });

  it('near-misses of valid calls (one argument replaced or added) give clear errors or valid results', async () => {
    const bases = { ...BASES };
    for (const t of tools) if (!bases[t.name] && t.examples[0]) bases[t.name] = t.examples[0];
    delete bases.load_model;
    const entries = Object.entries(bases).filter(([n]) => tools.some((t) => t.name === n));
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...entries).chain(([name, base]) =>
          fc.tuple(fc.constant(name), fc.constant(base), Object.keys(base).length ? fc.oneof(fc.constantFrom(...Object.keys(base)), fc.string({ maxLength: 10 })) : fc.string({ maxLength: 10 }), junk)),
        async ([name, base, key, value]) => {
          const args = { ...base, [key]: value };
          const r = await h.client.callTool({ name, arguments: args });
          expectClear(r, `${name} ${JSON.stringify(args).slice(0, 300)}`);
          if (isError(r) && !(key in base)) expect(text(r)).toMatch(/Unrecognized key|invalid arguments|not allowed|limit/i);
        },
      ),
      { numRuns: 100, seed: 7 },
    );
  });

  it('the server keeps serving after the fuzzing', async () => {
    const r = await h.client.callTool({ name: 'tokenize', arguments: { text: 'w1 w2 w3' } });
    expect(isError(r)).toBe(false);
    const p = await h.client.callTool({ name: 'patch_activations', arguments: BASES.patch_activations });
    expect(isError(p), text(p)).toBe(false);
    expect(h.stderr()).not.toMatch(/unhandled rejection/);
  });
});
