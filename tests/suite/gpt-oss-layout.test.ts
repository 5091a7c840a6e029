// `neuroscope suite --model DIR` on checkpoints in gpt-oss's own layout (sharded safetensors, MXFP4
// experts, the real o200k_harmony tokenizer and vocabulary size), as a user with gpt-oss-20b would run
// it: random weights, so conclusions mean nothing, but every experiment must run end to end on the
// real-checkpoint prompt sets, circuit growth must say what it needs, and --compare must make it run.
import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, expect, it } from 'vitest';
import { gptOssConfigJson, writeRandomCheckpoint } from '../../engine/write-checkpoint.ts';
import { GPTOSS_TOKENIZER_JSON } from '../helpers/gptossTokenizer.ts';

const run = promisify(execFile);
const REPO = join(import.meta.dirname, '..', '..');
const root = mkdtempSync(join(tmpdir(), 'ns-suite-layout-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function checkpoint(name: string, layers: number, heads: number): string {
  const dir = join(root, name);
  writeRandomCheckpoint(dir, gptOssConfigJson({
    hidden_size: 64, intermediate_size: 64, num_hidden_layers: layers, num_attention_heads: heads, num_key_value_heads: 2,
    head_dim: 16, num_local_experts: 4, experts_per_token: 2, sliding_window: 8,
  }), layers, { shards: 2 });
  copyFileSync(GPTOSS_TOKENIZER_JSON, join(dir, 'tokenizer.json'));
  return dir;
}

async function suite(args: string[]): Promise<{ code: number; out: string }> {
  try {
    const { stdout } = await run(process.execPath, [join(REPO, 'bin', 'neuroscope.js'), 'suite', '--threads', '1', ...args], {
      cwd: REPO, env: { ...process.env, NEUROSCOPE_DATA: join(root, 'data') }, timeout: 540_000, maxBuffer: 16 << 20,
    });
    return { code: 0, out: stdout };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: err.code ?? 1, out: `${err.stdout ?? ''}\n${err.stderr ?? ''}` };
  }
}

it('runs every experiment on a sharded MXFP4 checkpoint with the real tokenizer; circuit growth asks for --compare, then compares', async () => {
  const small = checkpoint('small', 3, 4);
  const out = join(root, 'out');
  const r = await suite(['--model', small, '--out', out]);
  expect(r.code, r.out).toBe(0);
  const files = readdirSync(out);
  for (const f of ['01-causal-tracing.md', '02-feature-localisation.md', '03-multi-token-steering.md', '04-circuit-growth.md', '05-cross-domain-entanglement.md', 'index.md']) expect(files).toContain(f);
  for (const f of files.filter((x) => /^0[1235]-.*\.md$/.test(x))) {
    const md = readFileSync(join(out, f), 'utf8');
    for (const heading of ['## Question', '## Method', '## Results', '## Conclusion', '## Reproduce']) expect(md, f).toContain(heading);
    expect(md, f).not.toContain('## Scored against the planted ground truth'); // no manifest: nothing to score
    expect(md, f).toMatch(/experiment_id = 'exp_[a-z0-9]+'/);
    expect(md, f).not.toMatch(/NaN|undefined/);
  }
  expect(readFileSync(join(out, '04-circuit-growth.md'), 'utf8')).toMatch(/\*\*Not run:\*\* .*--compare DIR/);
  const index = readFileSync(join(out, 'index.md'), 'utf8');
  expect(index).toContain('not run: circuit growth compares two sizes');
  expect(index).toMatch(/Prompt sets: .*prompts\/suite\/gpt-oss\.json/);
  const svgs = files.filter((x) => x.endsWith('.svg'));
  expect(svgs.length).toBeGreaterThan(4);
  for (const f of svgs) expect(readFileSync(join(out, f), 'utf8')).toMatch(/^<svg[\s\S]*<\/svg>\s*$/);

  const large = checkpoint('large', 4, 6);
  const out2 = join(root, 'out2');
  const g = await suite(['--model', large, '--compare', small, '--only', '4', '--out', out2]);
  expect(g.code, g.out).toBe(0);
  const md = readFileSync(join(out2, '04-circuit-growth.md'), 'utf8');
  // The smaller model comes first whichever was given first.
  expect(md).toMatch(/\| small \| 3 \| 12 \| \d+ \|[\s\S]*\| large \| 4 \| 24 \| \d+ \|/);
  expect(md).not.toMatch(/NaN|undefined| –[,)]/);
  expect(md).toMatch(/^small needs \d+ heads? for 80% recovery/m);
}, 1_080_000);
