// Measuring the planted behaviours through any gpt-oss forward pass. A measurement is a list of
// forward requests (prompt + ablation / steering / neuron capture), answered in one go by whichever
// implementation is plugged in (the build-time check, the engine, the reference oracle), and then
// turned into metrics. Nothing here knows how the weights were made; it reads roles from the manifest.
import type {
  EntanglementMetric, InductionMetric, IoiMetric, Manifest, SentimentMetric, SuccessorMetric, TaskExample, TinyMetrics,
} from './manifest.ts';

export interface HeadRef {
  layer: number;
  head: number;
}
export interface ExpertRef {
  layer: number;
  expert: number;
}

export interface ForwardRequest {
  tokens: number[];
  /** zero these heads' outputs (attn.hook_z) at every position */
  ablateHeads?: HeadRef[];
  /** zero these experts' outputs (mlp.hook_expert_out) at every position */
  ablateExperts?: ExpertRef[];
  /** add `vector` to blocks.<layer>.hook_resid_pre at the last position or at every position */
  steer?: { layer: number; vector: ArrayLike<number>; positions: 'last' | 'all' };
  /** return mlp.hook_post of this expert ([T, I]; zero where the router did not choose it) */
  captureNeurons?: ExpertRef;
}

export interface ForwardResult {
  /** [T, V] logits at every position */
  logits: Float32Array;
  neurons?: Float32Array;
}

/** Answers a batch of requests; sync or async. */
export type TinyForward = (requests: ForwardRequest[]) => ForwardResult[] | Promise<ForwardResult[]>;

export const parseHead = (s: string): HeadRef => {
  const m = /^L(\d+)\.H(\d+)$/.exec(s);
  if (!m) throw new Error(`not a head location: ${s}`);
  return { layer: Number(m[1]), head: Number(m[2]) };
};
export const parseExpert = (s: string): ExpertRef => {
  const m = /^L(\d+)\.E(\d+)$/.exec(s);
  if (!m) throw new Error(`not an expert location: ${s}`);
  return { layer: Number(m[1]), expert: Number(m[2]) };
};
export const parseNeuron = (s: string): ExpertRef & { unit: number } => {
  const m = /^L(\d+)\.E(\d+)\.N(\d+)$/.exec(s);
  if (!m) throw new Error(`not a neuron location: ${s}`);
  return { layer: Number(m[1]), expert: Number(m[2]), unit: Number(m[3]) };
};

/** The manifest's IOI head roles (every `ioi.*` role that lists heads). */
export function ioiHeadRoles(manifest: Pick<Manifest, 'roles'>): string[] {
  return Object.keys(manifest.roles).filter((r) => r.startsWith('ioi.') && Array.isArray(manifest.roles[r]));
}

export function rolesOf(manifest: Pick<Manifest, 'roles'>, name: string): string[] {
  const r = manifest.roles[name];
  if (!Array.isArray(r) || r.some((x) => typeof x !== 'string')) throw new Error(`manifest role ${name} is not a list of locations`);
  return r as string[];
}

/** Space-separated vocabulary words -> ids (throws on a word outside the vocabulary). */
export function encodeWords(prompt: string, id: (w: string) => number | undefined): number[] {
  return prompt.split(' ').map((w) => {
    const t = id(w);
    if (t === undefined) throw new Error(`"${w}" is not a word of the tiny vocabulary (prompt "${prompt}")`);
    return t;
  });
}

const argmax = (x: Float32Array, off: number, n: number) => {
  let best = 0;
  for (let i = 1; i < n; i++) if (x[off + i] > x[off + best]) best = i;
  return best;
};
const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);

/** Steering coefficient used for the sentiment metric (residual units; the residual norm is ~16). */
export const STEER_COEFFICIENT = 3;

/**
 * Measures every behaviour of a tiny model through `forward`. `id` maps a vocabulary word to its id.
 * Returns the metrics recorded in manifest.tasks.<behaviour>.metric.
 */
export async function measureTiny(
  manifest: Pick<Manifest, 'roles' | 'tasks' | 'words'>,
  id: (w: string) => number | undefined,
  vocabSize: number,
  forward: TinyForward,
): Promise<TinyMetrics> {
  const plan = planMeasurement(manifest, id);
  return plan.finish(await forward(plan.requests), vocabSize);
}

/** The same, for a forward pass that answers synchronously. */
export function measureTinySync(
  manifest: Pick<Manifest, 'roles' | 'tasks' | 'words'>,
  id: (w: string) => number | undefined,
  vocabSize: number,
  forward: (requests: ForwardRequest[]) => ForwardResult[],
): TinyMetrics {
  const plan = planMeasurement(manifest, id);
  return plan.finish(forward(plan.requests), vocabSize);
}

function planMeasurement(manifest: Pick<Manifest, 'roles' | 'tasks' | 'words'>, id: (w: string) => number | undefined) {
  const requests: ForwardRequest[] = [];
  const ask = (r: ForwardRequest) => requests.push(r) - 1;
  const enc = (p: string) => encodeWords(p, id);
  const tasks = manifest.tasks;
  const tok = (w: string) => encodeWords(w, id)[0];

  const nameMovers = rolesOf(manifest, 'ioi.name_mover').map(parseHead);
  const optionalHeads = (role: string) => (manifest.roles[role] ? rolesOf(manifest, role).map(parseHead) : []);
  const backups = optionalHeads('ioi.backup_name_mover');
  const negatives = optionalHeads('ioi.negative_name_mover');
  const allIoi = ioiHeadRoles(manifest).flatMap((r) => rolesOf(manifest, r).map(parseHead));
  const ioi = tasks.ioi.examples.map((ex) => ({
    ex,
    clean: ask({ tokens: enc(ex.prompt) }),
    allNm: ask({ tokens: enc(ex.prompt), ablateHeads: nameMovers }),
    nmAndBackups: backups.length ? ask({ tokens: enc(ex.prompt), ablateHeads: [...nameMovers, ...backups] }) : -1,
    negative: negatives.length ? ask({ tokens: enc(ex.prompt), ablateHeads: negatives }) : -1,
    allIoi: ask({ tokens: enc(ex.prompt), ablateHeads: allIoi }),
    oneNm: [] as number[],
  }));
  // With one name mover, "one ablated" is "all ablated": reuse those runs.
  for (const r of ioi) r.oneNm = nameMovers.length === 1 ? [r.allNm] : nameMovers.map((h) => ask({ tokens: enc(r.ex.prompt), ablateHeads: [h] }));

  const inductionHead = rolesOf(manifest, 'induction.induction_head').map(parseHead);
  const induction = tasks.induction.examples.map((ex) => ({
    ex,
    clean: ask({ tokens: enc(ex.prompt) }),
    ablated: ask({ tokens: enc(ex.prompt), ablateHeads: inductionHead }),
  }));

  const succExpert = rolesOf(manifest, 'successor.expert').map(parseExpert);
  const successor = tasks.successor.examples.map((ex) => ({
    ex,
    clean: ask({ tokens: enc(ex.prompt) }),
    ablated: ask({ tokens: enc(ex.prompt), ablateExperts: succExpert }),
  }));

  const reader = rolesOf(manifest, 'sentiment.reader_head').map(parseHead);
  const dir = manifest.roles['sentiment.direction'];
  if (!dir || Array.isArray(dir)) throw new Error('manifest has no sentiment.direction');
  const positive = new Set(manifest.words.positive ?? []);
  const sentiment = tasks.sentiment.examples.map((ex) => {
    // Steer against the context: toward negative for a positive context and vice versa.
    const sign = positive.has(ex.target) ? -1 : 1;
    const vector = dir.vector.map((x) => sign * STEER_COEFFICIENT * x);
    return {
      ex,
      clean: ask({ tokens: enc(ex.prompt) }),
      ablated: ask({ tokens: enc(ex.prompt), ablateHeads: reader }),
      steerLast: ask({ tokens: enc(ex.prompt), steer: { layer: dir.layer, vector, positions: 'last' } }),
      steerAll: ask({ tokens: enc(ex.prompt), steer: { layer: dir.layer, vector, positions: 'all' } }),
    };
  });

  const entExpert = rolesOf(manifest, 'entanglement.expert').map(parseExpert)[0];
  const domains = (['math', 'code', 'prose'] as const).map((domain) => ({
    domain,
    runs: tasks.entanglement.domains[domain].map((p) => ask({ tokens: enc(p), captureNeurons: entExpert })),
  }));
  const units = (role: string) => rolesOf(manifest, role).map((s) => parseNeuron(s).unit);

  const finish = (res: ForwardResult[], V: number): TinyMetrics => {
    if (res.length !== requests.length) throw new Error(`forward answered ${res.length} of ${requests.length} requests`);
    const last = (i: number) => {
      const T = requests[i].tokens.length;
      return { x: res[i].logits, off: (T - 1) * V };
    };
    const diff = (i: number, ex: TaskExample) => {
      const { x, off } = last(i);
      return x[off + tok(ex.target)] - x[off + tok(ex.distractor)];
    };
    const top1 = (i: number, ex: TaskExample) => {
      const { x, off } = last(i);
      return argmax(x, off, V) === tok(ex.target);
    };

    const ioiDiffs = ioi.map((r) => diff(r.clean, r.ex));
    const ioiMetric: IoiMetric = {
      min_logit_diff: Math.min(...ioiDiffs),
      mean_logit_diff: mean(ioiDiffs),
      top1: mean(ioi.map((r) => (top1(r.clean, r.ex) ? 1 : 0))),
      mean_logit_diff_name_movers_ablated: mean(ioi.map((r) => diff(r.allNm, r.ex))),
      mean_logit_diff_one_name_mover_ablated: nameMovers.map((_, k) => mean(ioi.map((r) => diff(r.oneNm[k], r.ex)))),
      ...(backups.length ? { mean_logit_diff_name_movers_and_backups_ablated: mean(ioi.map((r) => diff(r.nmAndBackups, r.ex))) } : {}),
      ...(negatives.length ? { mean_logit_diff_negative_ablated: mean(ioi.map((r) => diff(r.negative, r.ex))) } : {}),
      mean_logit_diff_all_ioi_ablated: mean(ioi.map((r) => diff(r.allIoi, r.ex))),
    };

    const repeatAccuracy = (i: number) => {
      const tokens = requests[i].tokens;
      const n = (tokens.length + 1) / 2;
      let hit = 0, total = 0;
      for (let p = n; p < tokens.length; p++) {
        // position p holds seq[p - n]; its next word is seq[p - n + 1], which the first half shows at p - n + 1
        if (argmax(res[i].logits, p * V, V) === tokens[p - n + 1]) hit++;
        total++;
      }
      return { hit, total };
    };
    const acc = (idx: number[]) => {
      let hit = 0, total = 0;
      for (const i of idx) {
        const a = repeatAccuracy(i);
        hit += a.hit;
        total += a.total;
      }
      return total ? hit / total : 0;
    };
    const inductionMetric: InductionMetric = {
      accuracy: acc(induction.map((r) => r.clean)),
      accuracy_induction_head_ablated: acc(induction.map((r) => r.ablated)),
      min_logit_diff: Math.min(...induction.map((r) => diff(r.clean, r.ex))),
    };

    const successorMetric: SuccessorMetric = {
      accuracy: mean(successor.map((r) => (top1(r.clean, r.ex) ? 1 : 0))),
      min_logit_diff: Math.min(...successor.map((r) => diff(r.clean, r.ex))),
      accuracy_expert_ablated: mean(successor.map((r) => (top1(r.ablated, r.ex) ? 1 : 0))),
    };

    const sentDiffs = sentiment.map((r) => diff(r.clean, r.ex));
    const sentimentMetric: SentimentMetric = {
      accuracy: mean(sentDiffs.map((x) => (x > 0 ? 1 : 0))),
      min_logit_diff: Math.min(...sentDiffs),
      accuracy_reader_ablated: mean(sentiment.map((r) => (diff(r.ablated, r.ex) > 0 ? 1 : 0))),
      steering: {
        coefficient: STEER_COEFFICIENT,
        shift_one_token: mean(sentiment.map((r, k) => sentDiffs[k] - diff(r.steerLast, r.ex))),
        shift_all_tokens: mean(sentiment.map((r, k) => sentDiffs[k] - diff(r.steerAll, r.ex))),
        flipped_one_token: mean(sentiment.map((r) => (diff(r.steerLast, r.ex) < 0 ? 1 : 0))),
        flipped_all_tokens: mean(sentiment.map((r) => (diff(r.steerAll, r.ex) < 0 ? 1 : 0))),
      },
    };

    const meanActivation = (unitList: number[], runIdx: number[]) => {
      let sum = 0, n = 0;
      for (const i of runIdx) {
        const a = res[i].neurons;
        if (!a) throw new Error('forward did not return the captured neuron activations');
        const T = requests[i].tokens.length;
        const I = a.length / T;
        for (let t = 0; t < T; t++) for (const u of unitList) {
          sum += a[t * I + u];
          n++;
        }
      }
      return n ? sum / n : 0;
    };
    const byDomain = (role: string) => {
      const u = units(role);
      const out = {} as Record<'math' | 'code' | 'prose', number>;
      for (const d of domains) out[d.domain] = meanActivation(u, d.runs);
      return out;
    };
    const entanglementMetric: EntanglementMetric = {
      polysemantic: byDomain('entanglement.polysemantic'),
      math_only: byDomain('entanglement.math_only'),
      code_only: byDomain('entanglement.code_only'),
    };

    return { ioi: ioiMetric, induction: inductionMetric, successor: successorMetric, sentiment: sentimentMetric, entanglement: entanglementMetric };
  };

  return { requests, finish };
}
