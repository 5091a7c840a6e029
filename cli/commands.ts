// Each CLI command: its options, usage line and what it runs.
import { existsSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { GptOssModel } from '../engine/model.ts';
import { buildTinyModel, TINY_SIZES, TINY_STYLES, type TinySize, type TinyStyle } from '../engine/tiny/index.ts';
import { Tokenizer } from '../engine/tokenizer.ts';
import { runSuite, suiteOutDir, EXPERIMENTS } from '../tools/suite/index.ts';
import { comparisonOpener } from '../tools/suite/compare.ts';
import { defaultDataDir as dataDir, modelOrDefault } from '../tools/defaults.ts';
import { openWorkspace, resolveModel } from '../tools/workspace.ts';
import { progressPrinter } from '../agent/progress.ts';
import { AGENT_OPTIONS, AGENT_USAGE } from '../agent/cli-options.ts';

type Values = Record<string, string | boolean | undefined>;
type Option = { type: 'string' | 'boolean'; short?: string };

export interface Command {
  summary: string;
  usage: string;
  options: Record<string, Option>;
  run: (values: Values, positionals: string[]) => Promise<number>;
  /** Hand the arguments over unparsed (positionals only), for commands that forward them. */
  passthrough?: boolean;
}

/** A checkpoint directory from --model (a built-in name is built into the data directory on first use), or the default model. */
const resolveModelDir = (model: string | undefined, data = dataDir()): string => resolveModel(modelOrDefault(model), data);

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

/** Row-major data as nested arrays of the given dims. */
function nested(data: Float32Array, dims: number[]): unknown {
  if (dims.length <= 1) return Array.from(data);
  const per = data.length / dims[0];
  return Array.from({ length: dims[0] }, (_, i) => nested(data.subarray(i * per, (i + 1) * per), dims.slice(1)));
}

async function suite(v: Values): Promise<number> {
  const data = dataDir();
  const modelDir = resolveModelDir(v.model as string | undefined, data);
  const only = v.only === undefined ? undefined : String(v.only).split(',').map((x) => Number(x.trim()));
  if (only?.some((n) => !Number.isInteger(n))) throw new Error(`--only takes experiment numbers like 1,3; available: ${EXPERIMENTS.map((e) => e.id).join(', ')}`);
  const outDir = v.out !== undefined ? resolve(String(v.out)) : suiteOutDir(basename(modelDir));
  const ws = await openWorkspace(modelDir, data, { threads: threads(v) });
  const bar = progressPrinter();
  const ac = new AbortController();
  const onSigint = () => ac.abort();
  process.once('SIGINT', onSigint);
  try {
    console.log(`NeuroScope suite on ${modelDir}\nreports -> ${outDir}`);
    const r = await runSuite({
      ctx: { ...ws.ctx, signal: ac.signal }, modelDir, outDir, only,
      openOther: comparisonOpener({ modelDir, dataDir: data, compare: v.compare as string | undefined, engine: { threads: threads(v) }, signal: ac.signal }),
      onStep: (e) => bar.step(`experiment ${e.experiment}/${e.of} ${e.title}`, e.experiment - 1, e.of, e.message),
    });
    bar.done();
    for (const rep of r.reports) {
      console.log(`\n${rep.id}. ${rep.title}${rep.score ? ` (ground truth ${rep.score.ok}/${rep.score.total})` : ''}\n   ${rep.conclusion}\n   ${join(r.outDir, rep.file)}`);
    }
    console.log(`\nindex: ${join(r.outDir, 'index.md')}`);
    return r.reports.some((x) => x.failed) ? 1 : 0;
  } finally {
    process.off('SIGINT', onSigint);
    await ws.close();
  }
}

export const commands: Record<string, Command> = {
  start: {
    summary: 'the main job: the terminal chat on a TTY, otherwise the research suite on the built-in model',
    usage: '[--model DIR|tiny-s|tiny-m] [--threads N] [--llm-model NAME] [--base-url URL] [--suite]',
    options: { model: { type: 'string' }, threads: { type: 'string' }, 'llm-model': { type: 'string' }, 'base-url': { type: 'string' }, suite: { type: 'boolean' } },
    async run(v) {
      // A person at a terminal gets the chat; pipes, CI and --suite get the headless suite with progress lines.
      if (!v.suite && process.stdin.isTTY && process.stdout.isTTY) {
        // Ink draws only its static part when CI or CONTINUOUS_INTEGRATION is set (read once, at import);
        // on a real terminal the chat must be live, so they are dropped before the UI loads.
        delete process.env.CI;
        delete process.env.CONTINUOUS_INTEGRATION;
        const { runChat } = await import('../agent/ui/main.tsx');
        return runChat({
          model: v.model as string | undefined, dataDir: dataDir(), threads: threads(v),
          llmModel: v['llm-model'] as string | undefined, baseURL: v['base-url'] as string | undefined,
        });
      }
      return suite(v);
    },
  },
  transcript: {
    summary: 'chat transcripts as Markdown: transcript export <session|latest> [--out FILE], transcript import FILE [--out DIR], transcript list',
    usage: '(export <session-id|latest|FILE.jsonl> [--out FILE.md] | import <conversations.json|messages.json|pasted.txt> [--out DIR] | list)',
    options: { out: { type: 'string' } },
    async run(v, pos) {
      const [verb, arg] = pos;
      const { findSession, listSessions } = await import('../agent/transcripts/session.ts');
      if (verb === 'list') {
        const all = listSessions(dataDir());
        if (all.length === 0) console.log(`no saved sessions in ${join(dataDir(), 'sessions')}`);
        for (const s of all) console.log(`${s.id}  ${s.mtime.toISOString().slice(0, 16).replace('T', ' ')}  ${s.file}`);
        return 0;
      }
      if (verb === 'export') {
        if (!arg) throw new Error('give a session: transcript export <session-id|latest> (transcript list shows them)');
        const { exportSession } = await import('../agent/transcripts/export.ts');
        const file = await exportSession(findSession(dataDir(), arg), { file: v.out as string | undefined });
        console.log(file);
        return 0;
      }
      if (verb === 'import') {
        if (!arg) throw new Error('give a file: transcript import FILE, with FILE a ChatGPT or Claude conversations.json, a JSON message list, or a conversation pasted as text ("User: ..." / "Assistant: ...")');
        const { importConversations } = await import('../agent/transcripts/import.ts');
        const files = await importConversations(arg, (v.out as string | undefined) ?? 'transcripts');
        for (const f of files) console.log(f);
        return 0;
      }
      throw new Error(`unknown transcript subcommand "${verb ?? ''}"; use: transcript export <session|latest> [--out FILE], transcript import FILE [--out DIR], transcript list`);
    },
  },
  bench: {
    summary: 'list the benchmarks in bench/, or run one: bench NAME [its options] (figures: bench/README.md)',
    usage: '[NAME [options]]',
    options: {},
    passthrough: true,
    run: async (_v, args) => (await import('./bench.ts')).runBenchmark(args),
  },
  suite: {
    summary: 'run the standard experiments and write Markdown reports with SVG plots',
    usage: '[--model DIR|tiny-s|tiny-m] [--compare DIR] [--only 1,3] [--out DIR] [--threads N]',
    options: { model: { type: 'string' }, compare: { type: 'string' }, only: { type: 'string' }, out: { type: 'string' }, threads: { type: 'string' } },
    run: (v) => suite(v),
  },
  models: {
    summary: 'build a built-in gpt-oss-tiny model: models build <tiny-s|tiny-m|tiny-l> [--seed N] [--style realistic|clean] --out DIR',
    usage: 'build <tiny-s|tiny-m|tiny-l> [--seed N] [--style realistic|clean] --out DIR',
    options: { seed: { type: 'string' }, out: { type: 'string' }, style: { type: 'string' } },
    async run(v, pos) {
      const [verb, size] = pos;
      if (verb !== 'build') throw new Error(`unknown models subcommand "${verb ?? ''}"; use: models build <${TINY_SIZES.join('|')}> [--seed N] [--style realistic|clean] --out DIR`);
      if (!(TINY_SIZES as readonly string[]).includes(size)) throw new Error(`unknown size "${size ?? ''}"; valid: ${TINY_SIZES.join(', ')}`);
      const seed = v.seed === undefined ? 0 : Number(v.seed);
      if (!Number.isInteger(seed) || seed < 0) throw new Error(`--seed must be a non-negative integer, got "${v.seed}"`);
      const style = (v.style ?? 'realistic') as string;
      if (!(TINY_STYLES as readonly string[]).includes(style)) throw new Error(`unknown --style "${style}"; valid: ${TINY_STYLES.join(', ')}`);
      if (!v.out) throw new Error('give --out DIR');
      const m = buildTinyModel(size as TinySize, seed, resolve(v.out as string), style as TinyStyle);
      console.log(`built ${m.model} (${m.style}) seed ${m.seed} in ${resolve(v.out as string)}: IOI min logit diff ${m.tasks.ioi.metric.min_logit_diff.toFixed(2)}, induction ${(100 * m.tasks.induction.metric.accuracy).toFixed(0)}%, successor ${(100 * m.tasks.successor.metric.accuracy).toFixed(0)}%`);
      return 0;
    },
  },
  mcp: {
    summary: 'serve the tools over MCP: stdio (desktop clients), or Streamable HTTP on 127.0.0.1 with --http',
    usage: '[--model DIR|tiny-s|tiny-m] [--data DIR] [--http] [--port N] [--token T] [--allow-host H,...] [--allow-origin O,...] [--path-token] [--threads N]',
    options: {
      model: { type: 'string' }, data: { type: 'string' }, http: { type: 'boolean' }, port: { type: 'string' }, token: { type: 'string' },
      'allow-host': { type: 'string' }, 'allow-origin': { type: 'string' }, 'path-token': { type: 'boolean' }, threads: { type: 'string' },
    },
    async run(v) {
      const { runMcp } = await import('../mcp-server/main.ts');
      const port = v.port === undefined ? undefined : Number(v.port);
      if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65535)) throw new Error(`--port must be an integer 0..65535, got "${v.port}"`);
      if (!v.http && ['port', 'token', 'allow-host', 'allow-origin', 'path-token'].some((k) => v[k] !== undefined)) {
        throw new Error('--port, --token, --allow-host, --allow-origin and --path-token are for --http');
      }
      const list = (x: unknown) => (typeof x === 'string' ? x.split(',').map((s) => s.trim()).filter(Boolean) : undefined);
      return runMcp({
        model: v.model as string | undefined, dataDir: (v.data as string | undefined) ?? dataDir(), http: !!v.http, port, token: v.token as string | undefined,
        threads: threads(v), allowedHosts: list(v['allow-host']), allowedOrigins: list(v['allow-origin']), pathToken: !!v['path-token'],
      });
    },
  },
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
  gradient: {
    summary: 'd logit[last position, ID] / d activation at one hook, as JSON (for checking against another implementation)',
    usage: '[--model DIR|tiny-s|tiny-m] --ids 1,2,3 --hook blocks.L.hook_resid_pre --target ID [--distractor ID] [--threads N] --json',
    options: {
      model: { type: 'string' }, ids: { type: 'string' }, hook: { type: 'string' }, target: { type: 'string' },
      distractor: { type: 'string' }, json: { type: 'boolean' }, threads: { type: 'string' },
    },
    async run(v) {
      const dir = resolveModelDir(v.model as string | undefined);
      if (v.ids === undefined || v.hook === undefined || v.target === undefined) throw new Error('gradient needs --ids, --hook and --target');
      const tokens = parseIds(v.ids as string);
      const id = (flag: 'target' | 'distractor') => {
        const n = Number(v[flag]);
        if (!Number.isInteger(n)) throw new Error(`--${flag} must be a token id, got "${v[flag]}"`);
        return n;
      };
      const { gradients } = await import('../engine/backward/gradient.ts');
      const model = GptOssModel.load(dir, { threads: threads(v) });
      try {
        // logit_diff when a distractor is given, else the target's logit itself.
        const metric = v.distractor === undefined
          ? { name: 'logit' as const, target: [id('target')] }
          : { name: 'logit_diff' as const, target: [id('target')], distractor: [id('distractor')] };
        const r = await gradients(model, [tokens], { metric, grads: [v.hook as string] });
        const [name, g] = [...r.grads][0];
        const grad = nested(g.data, g.dims.slice(1));
        if (v.json) console.log(JSON.stringify({ hook: name, value: r.metric[0], grad }));
        else console.log(`${name}: gradient of shape [${g.dims.slice(1)}], |g| = ${Math.hypot(...g.data).toPrecision(6)}, metric ${r.metric[0]}`);
      } finally {
        await model.dispose();
      }
      return 0;
    },
  },
  investigate: {
    summary: 'the hypothesis loop over MCP (an LLM agent), or without an LLM the built-in protocol for the question',
    usage: `"<question>" [--budget N tool calls] [--time M minutes] [--max-hypotheses N] [--max-rounds N] [--resume ID] [--json] ${AGENT_USAGE}`,
    options: { ...AGENT_OPTIONS, budget: { type: 'string' }, time: { type: 'string' }, 'max-hypotheses': { type: 'string' }, 'max-rounds': { type: 'string' }, resume: { type: 'string' }, json: { type: 'boolean' } },
    async run(v, pos) {
      const { investigateCommand } = await import('../agent/cli.ts');
      return investigateCommand(v, pos);
    },
  },
  chat: {
    summary: 'a conversation with the research agent (tools through MCP); slash commands work without an LLM',
    usage: AGENT_USAGE,
    options: { ...AGENT_OPTIONS },
    async run(v) {
      const { chatCommand } = await import('../agent/cli.ts');
      return chatCommand(v);
    },
  },
};

export { dataDir };
