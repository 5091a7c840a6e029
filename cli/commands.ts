// Each CLI command: its options, usage line and what it runs.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { GptOssModel } from '../engine/model.ts';
import { Tokenizer } from '../engine/tokenizer.ts';
import { resolveModelDir, dataDir } from './model-dir.ts';

type Values = Record<string, string | boolean | undefined>;
type Option = { type: 'string' | 'boolean'; short?: string };

export interface Command {
  summary: string;
  usage: string;
  options: Record<string, Option>;
  run: (values: Values, positionals: string[]) => Promise<number>;
}

function threads(v: Values): number | undefined {
  if (v.threads === undefined) return undefined;
  const n = Number(v.threads);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--threads must be a non-negative integer, got "${v.threads}"`);
  return n;
}

function parseIds(text: string): number[] {
  const ids = text.split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  if (ids.length === 0 || ids.some((n) => !Number.isInteger(n))) throw new Error(`--ids must be comma-separated integers, got "${text}"`);
  return ids;
}

export const commands: Record<string, Command> = {
  info: {
    summary: 'print a checkpoint\'s configuration, tensors and hooks',
    usage: '[--model DIR|tiny-s|tiny-m] [--json]',
    options: { model: { type: 'string' }, json: { type: 'boolean' } },
    async run(v) {
      const dir = resolveModelDir(v.model as string | undefined);
      const model = GptOssModel.load(dir);
      const c = model.config;
      const info = {
        dir,
        config: {
          hidden: c.hiddenSize, intermediate: c.intermediateSize, layers: c.numLayers, heads: c.numHeads, kvHeads: c.numKvHeads,
          headDim: c.headDim, vocab: c.vocabSize, experts: c.numExperts, topK: c.expertsPerToken, slidingWindow: c.slidingWindow,
          layerTypes: c.layerTypes, rope: c.rope, ropeTheta: c.ropeTheta,
        },
        tensors: model.checkpoint.tensorNames().length,
        expertsQuantized: model.checkpoint.expertsQuantized,
        tokenizer: existsSync(join(dir, 'tokenizer.json')),
        hooks: model.listHooks().map((h) => h.name),
      };
      if (v.json) console.log(JSON.stringify(info, null, 2));
      else {
        console.log(`${dir}\n  ${c.numLayers} layers, hidden ${c.hiddenSize}, ${c.numHeads} q heads / ${c.numKvHeads} kv heads x ${c.headDim}, ` +
          `${c.numExperts} experts (top-${c.expertsPerToken}, ${info.expertsQuantized ? 'MXFP4' : 'dense'}), vocab ${c.vocabSize}, sliding window ${c.slidingWindow}`);
        console.log(`  ${info.tensors} tensors; tokenizer.json ${info.tokenizer ? 'present' : 'absent'}`);
        console.log(`  hooks:\n${model.listHooks().map((h) => `    ${h.name.padEnd(34)} ${h.shape.padEnd(16)} ${h.doc}`).join('\n')}`);
      }
      await model.dispose();
      return 0;
    },
  },
  forward: {
    summary: 'run a forward pass and print logits as JSON',
    usage: '[--model DIR|tiny-s|tiny-m] (--ids 1,2,3 | --prompt TEXT) [--all-positions] [--threads N] --json',
    options: {
      model: { type: 'string' }, ids: { type: 'string' }, prompt: { type: 'string' },
      'all-positions': { type: 'boolean' }, json: { type: 'boolean' }, threads: { type: 'string' },
    },
    async run(v) {
      const dir = resolveModelDir(v.model as string | undefined);
      if ((v.ids === undefined) === (v.prompt === undefined)) throw new Error('give exactly one of --ids or --prompt');
      let tokens: number[];
      if (v.ids !== undefined) tokens = parseIds(v.ids as string);
      else {
        const tokFile = join(dir, 'tokenizer.json');
        if (!existsSync(tokFile)) throw new Error(`--prompt needs ${tokFile}; give --ids instead`);
        tokens = Tokenizer.fromFile(tokFile).encode(v.prompt as string);
      }
      const model = GptOssModel.load(dir, { threads: threads(v) });
      const r = await model.run([tokens], { logits: v['all-positions'] ? 'all' : 'last' });
      const V = model.config.vocabSize;
      const P = r.logits!.dims[1];
      const logits = Array.from({ length: P }, (_, p) => Array.from(r.logits!.data.subarray(p * V, (p + 1) * V)));
      await model.dispose();
      if (v.json) console.log(JSON.stringify({ tokens, logits }));
      else {
        const last = logits[logits.length - 1];
        const top = last.map((x, i) => [x, i] as const).sort((a, b) => b[0] - a[0]).slice(0, 10);
        console.log(`tokens: ${tokens.join(' ')}\ntop next tokens: ${top.map(([x, i]) => `${i} (${x.toFixed(3)})`).join(', ')}`);
      }
      return 0;
    },
  },
};

export { dataDir };
