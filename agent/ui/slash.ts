// Slash commands: each calls the same MCP tools the agent uses, with defaults that work on the
// built-in model (its own IOI, induction, sentiment and domain prompts), so `/patch` alone shows the
// IOI head-patching heatmap. Bad arguments get a message that says what to write instead.
import { LIMITS } from '../../tools/limits.ts';
import { closestName } from '../../tools/names.ts';
import { byLength, ioiPatchingSet, type PatchingSet, type TaskExample } from '../../tools/prompt-sets.ts';
import { inductionPatchingSet, loadSuitePrompts, type SuitePrompts } from '../../tools/suite/prompts.ts';
import { ArgError, checkKeys, int, intList, numList, parseArgs, stringList, type ParsedArgs } from './args.ts';
import type { CommandHost, ToolResult } from './host.ts';
import { displayGrid, gridsOf, type Grid } from './results.ts';

export interface SlashCommand {
  name: string;
  aliases?: string[];
  usage: string;
  summary: string;
  /** Argument keys it takes (key=value). */
  keys?: readonly string[];
  run: (ctl: CommandHost, args: ParsedArgs, rest: string) => Promise<void>;
}

async function prompts(ctl: CommandHost): Promise<SuitePrompts> {
  const info = await ctl.modelInfo();
  try {
    return loadSuitePrompts(info.dir);
  } catch (e) {
    throw new ArgError(`no built-in prompt sets for ${info.modelId} (${(e as Error).message}); give the prompts yourself (see /help)`);
  }
}

/** The IOI prompts of one token length (position sweeps need it), at most `n`. */
function ioiGroup(p: SuitePrompts, n = 12): TaskExample[] {
  const g = byLength(p.ioi)[0];
  if (!g?.length) throw new ArgError('the prompt set has no IOI prompts; give clean=, corrupted=, target= and distractor=');
  return g.slice(0, n);
}

const POSITIONAL_SITES = ['resid_pre', 'resid_mid', 'resid_post', 'attn_out', 'mlp_out'];

/** Replaces P<i> column labels by "i:token" from the prompt's tokens. */
async function tokenLabels(ctl: CommandHost, prompt: string): Promise<string[] | null> {
  const r = await ctl.quietTool('tokenize', { text: prompt });
  if (!r.ok) return null;
  return (r.data.tokens as { text: string }[]).map((t) => t.text);
}

function relabel(grids: Grid[], tokens: string[] | null): Grid[] | undefined {
  if (!tokens) return undefined;
  return grids.map((g) => (g.colAxis === 'position'
    ? { ...g, colLabels: g.colLabels.map((c) => {
      const i = Number(/^P(-?\d+)/.exec(c)?.[1]);
      return Number.isInteger(i) && tokens[i] !== undefined ? `${i}:${tokens[i]}` : c;
    }), colAxis: 'token' }
    : g));
}

function topSites(r: ToolResult, n: number): string[] {
  const top = r.data.top as { site: string; effect: number }[];
  return top.filter((x) => Math.abs(x.effect) > 0.05).slice(0, n).map((x) => x.site);
}

// ---------------------------------------------------------------------------------------------

const PATCH_KEYS = ['site', 'clean', 'corrupted', 'target', 'distractor', 'metric', 'layers', 'heads', 'positions', 'perPosition', 'experts', 'neurons', 'corruption', 'n', 'task', 'mode', 'maxBatch'] as const;

async function patch(ctl: CommandHost, a: ParsedArgs): Promise<void> {
  const n = a.named;
  checkKeys('patch', n, PATCH_KEYS);
  const site = String(n.site ?? a.positional[0] ?? 'head');
  const args: Record<string, unknown> = { site };
  let clean: string[];
  if (n.clean !== undefined || n.corrupted !== undefined) {
    if (n.clean === undefined || n.corrupted === undefined) throw new ArgError('give both clean="..." and corrupted="..." (token-aligned prompts), or neither to use the built-in IOI prompts');
    clean = stringList(n.clean, 'clean');
    const corrupted = stringList(n.corrupted, 'corrupted');
    if (n.target === undefined) throw new ArgError('give target=WORD (the answer on the clean prompt), and distractor=WORD for the logit difference');
    if ((n.metric ?? 'logit_diff') === 'logit_diff' && n.distractor === undefined) throw new ArgError('the logit_diff metric needs distractor=WORD (the competing answer); or choose metric=prob');
    Object.assign(args, { clean, corrupted, target: n.target, ...(n.distractor !== undefined ? { distractor: n.distractor } : {}) });
  } else {
    const p = await prompts(ctl);
    const task = String(n.task ?? 'ioi');
    let set: PatchingSet;
    if (task === 'ioi') {
      const corruption = String(n.corruption ?? (POSITIONAL_SITES.includes(site) ? 'abc' : 'io_swap'));
      if (corruption !== 'io_swap' && corruption !== 'abc') throw new ArgError(`corruption must be io_swap (replace the indirect object) or abc (replace the repeated subject), got "${corruption}"`);
      set = ioiPatchingSet(ioiGroup(p, n.n === undefined ? 12 : int(n.n, 'n')), corruption);
    } else if (task === 'induction') {
      set = inductionPatchingSet(byLength(p.induction)[0].slice(0, n.n === undefined ? 12 : int(n.n, 'n')));
    } else throw new ArgError(`task must be ioi or induction (or give clean=/corrupted= yourself), got "${task}"`);
    clean = set.clean;
    Object.assign(args, set);
    if (n.target !== undefined) args.target = n.target;
    if (n.distractor !== undefined) args.distractor = n.distractor;
  }
  for (const k of ['metric', 'mode'] as const) if (n[k] !== undefined) args[k] = n[k];
  if (n.layers !== undefined) args.layers = intList(n.layers, 'layers');
  if (n.heads !== undefined) args.heads = intList(n.heads, 'heads');
  if (n.experts !== undefined) args.experts = intList(n.experts, 'experts');
  if (n.neurons !== undefined) args.neurons = stringList(n.neurons, 'neurons');
  if (n.positions !== undefined) args.positions = n.positions === 'all' ? 'all' : intList(n.positions, 'positions');
  if (n.perPosition !== undefined) args.perPosition = n.perPosition;
  if (n.maxBatch !== undefined) args.maxBatch = int(n.maxBatch, 'maxBatch');
  const positional = POSITIONAL_SITES.includes(site) || (site === 'head' && args.perPosition === true);
  const tokens = positional ? await tokenLabels(ctl, clean[0]) : null;
  const r = await ctl.tool('patch_activations', args, { grids: (res) => relabel(gridsOf(res.data), tokens) });
  // Heads that mattered: the default components of a later /ablate.
  if (site === 'head' && args.perPosition !== true) ctl.memory.lastPatchTop = topSites(r, 4);
}

const ABLATE_KEYS = ['components', 'method', 'prompts', 'target', 'distractor', 'metric', 'reference', 'expertMode', 'each', 'seed', 'n'] as const;

async function ablate(ctl: CommandHost, a: ParsedArgs): Promise<void> {
  const n = a.named;
  checkKeys('ablate', n, ABLATE_KEYS);
  const args: Record<string, unknown> = {};
  let components = n.components ?? (a.positional.length ? a.positional.join(',').split(',').filter(Boolean) : undefined);
  if (components === undefined) {
    if (ctl.memory.lastPatchTop?.length) components = ctl.memory.lastPatchTop;
    else {
      const info = await ctl.modelInfo();
      components = [...Array(info.heads).keys()].map((h) => `L${info.layers - 1}.H${h}`);
    }
  }
  args.components = stringList(components, 'components');
  if (n.prompts !== undefined) {
    args.prompts = stringList(n.prompts, 'prompts');
    if (n.target !== undefined) args.target = n.target;
    if (n.distractor !== undefined) args.distractor = n.distractor;
  } else {
    const g = ioiGroup(await prompts(ctl), n.n === undefined ? 12 : int(n.n, 'n'));
    Object.assign(args, { prompts: g.map((e) => e.prompt), target: n.target ?? g.map((e) => e.target), distractor: n.distractor ?? g.map((e) => e.distractor) });
  }
  for (const k of ['method', 'metric', 'expertMode', 'each', 'seed'] as const) if (n[k] !== undefined) args[k] = n[k];
  if (n.reference !== undefined) args.reference = stringList(n.reference, 'reference');
  await ctl.tool('ablate', args, { tableRows: 12 });
}

const STEER_KEYS = ['layer', 'layers', 'prompts', 'target', 'distractor', 'positive', 'negative', 'vector', 'coefficients', 'modes', 'hook', 'window', 'generateTokens', 'metric', 'saveAs'] as const;

async function steer(ctl: CommandHost, a: ParsedArgs): Promise<void> {
  const n = a.named;
  checkKeys('steer', n, STEER_KEYS);
  const info = await ctl.modelInfo();
  const args: Record<string, unknown> = { layer: n.layer === undefined ? Math.floor(info.layers / 2) : int(n.layer, 'layer'), hook: n.hook ?? 'resid_pre' };
  let p: SuitePrompts | null = null;
  const need = async () => (p ??= await prompts(ctl));
  if (n.vector !== undefined) args.vector = { name: String(n.vector) };
  else if (n.positive !== undefined || n.negative !== undefined) {
    if (n.positive === undefined || n.negative === undefined) throw new ArgError('a contrast needs both positive="..." and negative="..." prompts');
    args.vector = { positive: stringList(n.positive, 'positive'), negative: stringList(n.negative, 'negative') };
  } else {
    const s = await need();
    args.vector = { positive: s.contrast.positive, negative: s.contrast.negative };
  }
  if (n.prompts !== undefined) {
    args.prompts = stringList(n.prompts, 'prompts');
    if (n.target !== undefined) args.target = n.target;
    if (n.distractor !== undefined) args.distractor = n.distractor;
  } else {
    // Negative contexts scored as logit(positive word) - logit(negative word), as the suite does.
    const s = await need();
    const neg = s.sentiment.filter((_, i) => i % 2 === 1).slice(0, 6);
    if (!neg.length) throw new ArgError('no sentiment prompts in the prompt set; give prompts=, target= and distractor=');
    Object.assign(args, { prompts: neg.map((e) => e.prompt), target: n.target ?? neg.map((e) => e.distractor), distractor: n.distractor ?? neg.map((e) => e.target) });
  }
  if (n.layers !== undefined) args.layers = intList(n.layers, 'layers');
  if (n.coefficients !== undefined) args.coefficients = numList(n.coefficients, 'coefficients');
  if (n.modes !== undefined) args.modes = stringList(n.modes, 'modes');
  for (const k of ['window', 'generateTokens', 'metric', 'saveAs'] as const) if (n[k] !== undefined) args[k] = n[k];
  // The result's mode x coefficient grid of metric shifts is drawn as a heatmap.
  const r = await ctl.tool('steer', args, { tableRows: 0 });
  // Greedy continuations with and without steering, as a table.
  const gens = r.data.generations as { prompt: string; unsteered: string; steered: Record<string, string> }[];
  if (gens.length) {
    const modes = Object.keys(gens[0].steered ?? {});
    const esc = (x: string) => String(x).replace(/\|/g, '\\|');
    ctl.note(['**Generations (greedy), unsteered vs steered**', '', `| prompt | unsteered | ${modes.join(' | ')} |`, `|---|---|${modes.map(() => '---|').join('')}`,
      ...gens.map((g) => `| ${esc(g.prompt)} | ${esc(g.unsteered)} | ${modes.map((m) => esc(g.steered[m] ?? '')).join(' | ')} |`)].join('\n'));
  }
}

const PROBE_KEYS = ['hook', 'layers', 'position', 'classes', 'examples', 'name', 'folds', 'l2'] as const;

async function probe(ctl: CommandHost, a: ParsedArgs): Promise<void> {
  const n = a.named;
  checkKeys('probe', n, PROBE_KEYS);
  const args: Record<string, unknown> = {};
  if (n.examples !== undefined) {
    if (!Array.isArray(n.examples)) throw new ArgError('examples must be a JSON list like [{"prompt":"3 4 5","label":"number"},{"prompt":"Mary and John","label":"name"}]');
    args.examples = n.examples;
  } else {
    const p = await prompts(ctl);
    const wanted = n.classes !== undefined ? stringList(n.classes, 'classes') : Object.keys(p.domains);
    const examples = wanted.flatMap((d) => {
      const list = p.domains[d] ?? p.classes[d];
      if (!list) throw new ArgError(`no prompts for "${d}"; choose from: ${[...Object.keys(p.domains), ...Object.keys(p.classes)].join(', ')}`);
      return list.map((prompt) => ({ prompt, label: d }));
    });
    args.examples = examples;
  }
  if (n.hook !== undefined) args.hook = String(n.hook);
  if (n.layers !== undefined) args.layers = intList(n.layers, 'layers');
  if (n.position !== undefined) args.position = n.position;
  if (n.name !== undefined) args.name = String(n.name);
  if (n.l2 !== undefined) args.l2 = n.l2;
  if (n.folds !== undefined) args.split = { folds: int(n.folds, 'folds') };
  await ctl.tool('train_probe', args, { tableRows: 12 });
}

const LENS_KEYS = ['prompts', 'target', 'position', 'layers', 'residMid', 'embed', 'topK', 'n'] as const;

async function lens(ctl: CommandHost, a: ParsedArgs): Promise<void> {
  const n = a.named;
  checkKeys('lens', n, LENS_KEYS);
  const args: Record<string, unknown> = {};
  if (n.prompts !== undefined || a.positional.length) {
    args.prompts = n.prompts !== undefined ? stringList(n.prompts, 'prompts') : [a.positional.join(' ')];
    if (n.target !== undefined) args.target = n.target;
  } else {
    const g = ioiGroup(await prompts(ctl), n.n === undefined ? 8 : int(n.n, 'n'));
    args.prompts = g.map((e) => e.prompt);
    args.target = n.target ?? g.map((e) => e.target);
  }
  for (const k of ['position', 'residMid', 'embed', 'topK'] as const) if (n[k] !== undefined) args[k] = n[k];
  if (n.layers !== undefined) args.layers = intList(n.layers, 'layers');
  await ctl.tool('logit_lens', args, { tableRows: 6, maxTables: 1, grids: lensGrid });
}

/** The target's probability by site and prompt (when a target was given), on a 0..1 scale. */
function lensGrid(r: ToolResult): Grid[] | undefined {
  const g = r.data.targetProb;
  return g ? [{ ...displayGrid('probability of the target (logit lens)', g), min: 0, max: 1 }] : undefined;
}

const ATTN_KEYS = ['head', 'prompt', 'prompts', 'layers', 'heads', 'tokens'] as const;

async function attn(ctl: CommandHost, a: ParsedArgs): Promise<void> {
  const n = a.named;
  checkKeys('attn', n, ATTN_KEYS);
  let list: string[];
  /** Where each role's prompts start (default prompts): a head's pattern is drawn on a prompt where its role shows. */
  let inductionFrom: number | null = null;
  if (n.prompts !== undefined) list = stringList(n.prompts, 'prompts');
  else if (n.prompt !== undefined) list = stringList(n.prompt, 'prompt');
  else {
    const p = await prompts(ctl);
    // IOI prompts for name-mover-like heads, induction prompts so induction heads can be scored.
    const ioi = ioiGroup(p, 6).map((e) => e.prompt);
    list = [...ioi, ...p.induction.slice(0, 6).map((e) => e.prompt)];
    inductionFrom = ioi.length;
  }
  const matrixTokens = n.tokens === undefined ? 16 : int(n.tokens, 'tokens');
  let head: string | undefined = n.head !== undefined ? String(n.head) : a.positional[0];
  const base: Record<string, unknown> = { prompts: list, matrixTokens, maxPatternHeads: 0, top: 8 };
  if (n.layers !== undefined) base.layers = intList(n.layers, 'layers');
  if (n.heads !== undefined) base.heads = /L\d/.test(String(n.heads)) ? stringList(n.heads, 'heads') : intList(n.heads, 'heads');
  let patternPrompt = 0;
  if (head === undefined) {
    // Score every head first, then draw the strongest candidate's pattern.
    const r = await ctl.tool('attention_patterns', base, { tableRows: 8 });
    const first = (r.data.candidates as { head: string; roles: { role: string }[] }[])[0];
    if (!first) {
      ctl.note('No head stands out on these prompts; pick one with /attn head=L1.H0.');
      return;
    }
    head = first.head;
    // An induction or duplicate-token head shows its role on repeated text, not on an IOI prompt.
    if (inductionFrom !== null && ['induction', 'duplicate_token'].includes(first.roles[0].role)) patternPrompt = inductionFrom;
  }
  if (!/^L\d+\.H\d+$/.test(head)) throw new ArgError(`head must look like L1.H0 (layer and head), got "${head}"`);
  await ctl.tool('attention_patterns', { prompts: list, matrixTokens, maxPatternHeads: 0, head, heads: [head], patternPrompt }, { tableRows: 0, textLines: 0 });
}

const CAPTURE_KEYS = ['prompt', 'prompts', 'hooks', 'positions', 'components'] as const;

async function capture(ctl: CommandHost, a: ParsedArgs): Promise<void> {
  const n = a.named;
  checkKeys('capture', n, CAPTURE_KEYS);
  let list: string[];
  if (n.prompts !== undefined) list = stringList(n.prompts, 'prompts');
  else if (n.prompt !== undefined) list = stringList(n.prompt, 'prompt');
  else if (a.positional.length) list = [a.positional.join(' ')];
  else list = [ioiGroup(await prompts(ctl), 1)[0].prompt];
  const hooks = n.hooks !== undefined ? stringList(n.hooks, 'hooks') : ['blocks.*.hook_resid_post'];
  const args: Record<string, unknown> = { prompts: list, hooks };
  if (n.positions !== undefined) args.positions = n.positions === 'all' ? 'all' : intList(n.positions, 'positions');
  if (n.components !== undefined) args.components = intList(n.components, 'components');
  const r = await ctl.tool('capture_activations', args, { tableRows: 8 });
  // Norms of the first prompt's residual stream, layer x token, from the store.
  const runId = (r.data.runIds as string[])[0];
  if (!runId || !hooks.some((h) => h.includes('resid'))) return;
  // A long prompt (2,400 tokens x 24 layers) would pass the query's row limit: positions are
  // averaged in bins of k so that every layer and position is drawn.
  const maxRows = LIMITS.maxSqlRows;
  const sql = `WITH r AS (SELECT layer, position, norm FROM activations WHERE run_id = '${runId}' AND hook LIKE '%resid_post' AND component IS NULL), `
    + `k AS (SELECT greatest(1, ceil((max(position) + 1) * count(DISTINCT layer) / ${maxRows}.0))::INTEGER AS k FROM r) `
    + 'SELECT layer, b * k AS position, avg(norm) AS norm FROM (SELECT layer, position // k AS b, k, norm FROM r, k) GROUP BY layer, b, k ORDER BY layer, position';
  const tokens = await tokenLabels(ctl, list[0]);
  await ctl.tool('query_activations', { sql, maxRows }, { tableRows: 0, grids: (res) => normGrid(res, tokens) });
}

function normGrid(r: ToolResult, tokens: string[] | null): Grid[] | undefined {
  const rows = r.data.rows as [number, number, number][];
  if (!rows.length) return undefined;
  const layers = [...new Set(rows.map((x) => x[0]))].sort((a, b) => a - b);
  const positions = [...new Set(rows.map((x) => x[1]))].sort((a, b) => a - b);
  const values = layers.map((l) => positions.map((p) => rows.find((x) => x[0] === l && x[1] === p)?.[2] ?? null));
  const finite = values.flat().filter((v): v is number => v !== null && Number.isFinite(v));
  const bin = positions.length > 1 ? positions[1] - positions[0] : 1;
  return [{ min: finite.reduce((a, b) => Math.min(a, b), Infinity), max: finite.reduce((a, b) => Math.max(a, b), -Infinity), title: `residual stream norm (hook_resid_post${bin > 1 ? `; mean of ${bin} positions per column` : ''})`, rowLabels: layers.map((l) => `L${l}`), colLabels: positions.map((p) => (tokens?.[p] !== undefined ? `${p}:${tokens[p]}` : `P${p}`)), values, rowAxis: 'layer', colAxis: 'token' }];
}

async function suite(ctl: CommandHost, a: ParsedArgs): Promise<void> {
  checkKeys('suite', a.named, ['only', 'out']);
  const only = a.named.only !== undefined ? intList(a.named.only, 'only') : undefined;
  const info = await ctl.modelInfo();
  const { runSuite, suiteOutDir } = await import('../../tools/suite/index.ts');
  const { comparisonOpener } = await import('../../tools/suite/compare.ts');
  const { join, resolve } = await import('node:path');
  const outDir = a.named.out !== undefined ? resolve(String(a.named.out)) : suiteOutDir(info.modelId);
  const card = ctl.card('suite', { model: info.modelId, ...(only ? { only } : {}), out: outDir });
  const signal = ctl.signal;
  try {
    // The suite runs the tools in process, queued with every MCP call on the shared model.
    const r = await ctl.inProcess((ctx) => runSuite({
      ctx, modelDir: info.dir, outDir, only,
      openOther: comparisonOpener({ modelDir: info.dir, dataDir: info.dataDir, signal }),
      onStep: (e) => card.progress({ progress: e.experiment - 1, total: e.of, message: `${e.title}: ${e.message}` }),
    }));
    const summary = {
      outDir: r.outDir,
      index: join(r.outDir, 'index.md'),
      reports: r.reports.map((x) => ({ experiment: x.id, title: x.title, groundTruth: x.score ? `${x.score.ok}/${x.score.total}` : 'n/a', file: x.file })),
    };
    card.end({ ok: true, text: JSON.stringify(summary, null, 2), structured: summary });
    ctl.note(r.reports.map((x) => `**${x.id}. ${x.title}**${x.score ? ` (ground truth ${x.score.ok}/${x.score.total})` : ''}: ${x.conclusion}`).join('\n\n') + `\n\nReports: \`${join(r.outDir, 'index.md')}\``, 'success');
  } catch (e) {
    card.end({ ok: false, text: (e as Error).message });
    throw e;
  }
}

/** `/tool`: any MCP tool by name, with JSON or key=value arguments (what errors and the agent refer to). */
async function anyTool(ctl: CommandHost, _a: ParsedArgs, rest: string): Promise<void> {
  const m = /^\s*(\S*)\s*([\s\S]*)$/.exec(rest)!;
  const tools = await ctl.tools();
  if (!m[1]) {
    ctl.note(['**Tools** (`/tool NAME {json}` or `/tool NAME key=value`):', '', ...tools.map((t) => `- \`${t.name}\`: ${t.description.split(/(?<=\.)\s/)[0]}`)].join('\n'));
    return;
  }
  if (!tools.some((t) => t.name === m[1])) {
    const near = closestName(m[1], tools.map((t) => t.name));
    throw new ArgError(`no tool "${m[1]}"${near ? `; did you mean ${near}?` : ''} (/tool lists them)`);
  }
  let args: Record<string, unknown>;
  if (m[2].trim().startsWith('{')) {
    try {
      args = JSON.parse(m[2]);
    } catch (e) {
      throw new ArgError(`the arguments are not valid JSON (${(e as Error).message}); write them as {"key": value} or key=value`);
    }
  } else args = parseArgs(m[2]).named;
  await ctl.tool(m[1], args, { tableRows: 12 });
}

function help(_ctl: CommandHost, a: ParsedArgs): string {
  const which = a.positional[0]?.replace(/^\//, '');
  if (which) {
    const c = findCommand(which);
    if (!c) throw new ArgError(`no command /${which}; /help lists them`);
    return `**/${c.name}** ${c.usage}\n\n${c.summary}${c.keys ? `\n\nArguments: ${c.keys.map((k) => `\`${k}\``).join(', ')}` : ''}`;
  }
  return [
    '## Commands',
    '',
    ...COMMANDS.map((c) => `- \`/${c.name}${c.usage ? ` ${c.usage}` : ''}\`: ${c.summary}`),
    '',
    'Arguments are `key=value`: quote text (`clean="When Mary and John ..."`), lists as `layers=0,1` or `layers=[0,1]`. Without arguments the experiment commands use the built-in model\'s own IOI, induction and sentiment prompts.',
    '',
    'Keys: **Enter** sends · **Alt+Enter** or a trailing `\\` adds a line · **↑/↓** history · **Esc** cancels a running command · **Ctrl+C** twice quits.',
  ].join('\n');
}

export const COMMANDS: SlashCommand[] = [
  { name: 'help', usage: '[command]', summary: 'this list, or one command\'s arguments', run: async (ctl, a) => ctl.note(help(ctl, a)) },
  {
    name: 'model', usage: '[tiny-s|tiny-m|DIR]', summary: 'show the loaded model, or switch to a built-in model or a checkpoint directory',
    run: async (ctl, a) => {
      const target = a.positional[0] ?? (a.named.model as string | undefined);
      if (!target) {
        await ctl.tool('model_info', {});
        return;
      }
      await ctl.tool('load_model', { model: String(target) });
      await ctl.modelChanged();
    },
  },
  { name: 'hooks', usage: '[filter]', summary: 'the hook points of the model (filter by a substring, e.g. attn)', run: async (ctl, a) => void (await ctl.tool('list_hooks', a.positional[0] ? { filter: a.positional[0] } : {}, { tableRows: 40 })) },
  { name: 'capture', usage: '[prompt="..."] [hooks=blocks.*.hook_resid_post]', summary: 'capture activations into the store; draws residual norms per layer and token', keys: CAPTURE_KEYS, run: capture },
  {
    name: 'patch', usage: '[site=head|resid_pre|...] [clean="..." corrupted="..." target=X distractor=Y] [layers=..] [task=ioi|induction]',
    summary: 'activation patching; alone: IOI head patching on the built-in prompts, drawn as a layer x head heatmap', keys: PATCH_KEYS, run: patch,
  },
  { name: 'ablate', usage: '[components=L3.H0,L3.H1] [method=zero|mean|resample] [prompts=...]', summary: 'ablate components and measure the damage (default: the top heads of the last head /patch, else the last layer\'s heads, on IOI)', keys: ABLATE_KEYS, run: ablate },
  { name: 'steer', usage: '[layer=N] [positive=... negative=...] [coefficients=0,1,2,4]', summary: 'steer with a contrast vector (default: the sentiment contrast) at one token, a window, or every token', keys: STEER_KEYS, run: steer },
  { name: 'probe', usage: '[classes=math,code] [hook=resid_post] [layers=..]', summary: 'train linear probes per layer (default: which domain a prompt is from)', keys: PROBE_KEYS, run: probe },
  { name: 'lens', usage: '[prompts=...] [target=X]', summary: 'logit lens: the answer\'s rank and probability after each layer (default: IOI)', keys: LENS_KEYS, run: lens },
  { name: 'attn', usage: '[head=L1.H0] [prompt="..."]', summary: 'attention head roles, and one head\'s pattern as a token x token heatmap (default: the top candidate head)', keys: ATTN_KEYS, run: attn },
  {
    name: 'sql', usage: '<query>', summary: 'a read-only SQL query over the activation store (DuckDB)',
    run: async (ctl, _a, rest) => {
      if (!rest.trim()) throw new ArgError("give a query, e.g. /sql SELECT experiment_id, kind, metric FROM experiments ORDER BY created_at DESC LIMIT 5");
      await ctl.tool('query_activations', { sql: rest.trim(), maxRows: 200 }, { tableRows: 30 });
    },
  },
  {
    name: 'findings', usage: '[name]', summary: 'list the findings written so far, or show one',
    run: async (ctl, a) => {
      const name = a.positional[0];
      if (!name) {
        await ctl.tool('list_findings', {}, { tableRows: 30 });
        return;
      }
      const text = await ctl.readResource(`neuroscope://findings/${encodeURIComponent(name)}`).catch((e: Error) => {
        throw new ArgError(`no finding "${name}": ${e.message.split('\n')[0].replace(/^(MCP error -?\d+: )+/, '')}`);
      });
      ctl.note(text);
    },
  },
  { name: 'tool', usage: '[name] [{json} | key=value ...]', summary: 'call any research tool by name (alone: list the tools), e.g. /tool describe_store', run: anyTool },
  { name: 'suite', usage: '[only=1,3]', summary: 'run the standard experiments and write Markdown reports with plots', keys: ['only', 'out'], run: suite },
  {
    name: 'investigate', usage: '<question>', summary: 'the agent forms hypotheses, runs experiments and writes a finding; without an LLM the built-in protocol for the question runs',
    run: async (ctl, _a, rest) => {
      if (!rest.trim()) throw new ArgError('give a question, e.g. /investigate Which heads carry IOI? (without an LLM, mention a built-in protocol: IOI, induction, ...)');
      await ctl.investigate(rest.trim());
    },
  },
  {
    name: 'export', usage: '[file]', summary: 'write this conversation as Markdown into transcripts/ (or FILE)',
    run: async (ctl, a) => {
      const file = await ctl.exportTranscript(a.positional[0]);
      ctl.note(`Transcript written to \`${file}\``, 'success');
    },
  },
  { name: 'clear', usage: '', summary: 'clear the screen and the agent\'s memory of this conversation (the session log keeps everything)', run: async (ctl) => ctl.clear() },
  { name: 'quit', aliases: ['exit', 'q'], usage: '', summary: 'leave (the session is saved; /export first for Markdown)', run: async (ctl) => ctl.quit() },
];

export function findCommand(name: string): SlashCommand | undefined {
  return COMMANDS.find((c) => c.name === name || c.aliases?.includes(name));
}

export async function runSlash(ctl: CommandHost, text: string): Promise<void> {
  const m = /^\/(\S*)\s*([\s\S]*)$/.exec(text.trim())!;
  const name = m[1].toLowerCase();
  const rest = m[2];
  const cmd = findCommand(name);
  if (!cmd) {
    const near = COMMANDS.filter((c) => c.name.startsWith(name.slice(0, 2))).map((c) => `/${c.name}`);
    throw new ArgError(`unknown command /${name}${near.length ? `; did you mean ${near.join(' or ')}?` : ''} (/help lists the commands)`);
  }
  // Free-text commands take the rest of the line as it is.
  const args = ['sql', 'investigate', 'tool'].includes(cmd.name) ? { named: {}, positional: [] } : parseArgs(rest);
  await cmd.run(ctl, args, rest);
}
