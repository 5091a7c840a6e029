// Scalar metrics of one row's last-position logits, with their exact gradient w.r.t. those logits:
// the seed of every backward pass. Computed in float64.
export type MetricKind = 'logit' | 'logit_diff' | 'prob' | 'logprob' | 'loss' | 'kl';

/** One metric per batch row. `target` for all but kl; `distractor` for logit_diff; `clean` (logits) for kl. */
export interface LogitMetric {
  name: MetricKind;
  target?: readonly number[];
  distractor?: readonly number[];
  /** kl: the clean run's last-position logits per row; the metric is KL(clean || this run). */
  clean?: readonly ArrayLike<number>[];
}

export class MetricError extends Error {}

/** log softmax in float64. */
export function logSoftmax(x: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < x.length; i++) max = Math.max(max, x[i]);
  let s = 0;
  for (let i = 0; i < x.length; i++) s += Math.exp(x[i] - max);
  const lse = max + Math.log(s);
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = x[i] - lse;
  return out;
}

/** Checks that a metric has what it needs for B rows and a vocabulary of V. */
export function checkMetric(m: LogitMetric, B: number, V: number): void {
  const need = (what: 'target' | 'distractor', ids: readonly number[] | undefined) => {
    if (!ids) throw new MetricError(`metric ${m.name} needs a ${what} token id per row`);
    if (ids.length !== B) throw new MetricError(`metric ${m.name}: ${ids.length} ${what} ids for ${B} rows; give one per row`);
    for (const id of ids) if (!Number.isInteger(id) || id < 0 || id >= V) throw new MetricError(`metric ${m.name}: ${what} id ${id} is out of range; valid ids are 0..${V - 1}`);
  };
  if (m.name === 'kl') {
    if (!m.clean || m.clean.length !== B) throw new MetricError(`metric kl needs the clean logits of each of the ${B} rows`);
    for (const c of m.clean) if (c.length !== V) throw new MetricError(`metric kl: clean logits have ${c.length} entries, expected the vocabulary size ${V}`);
    return;
  }
  need('target', m.target);
  if (m.name === 'logit_diff') need('distractor', m.distractor);
}

/** The metric of row b and d metric / d logits (length V). */
export function metricWithGrad(m: LogitMetric, b: number, logits: ArrayLike<number>): { value: number; grad: Float64Array } {
  const V = logits.length;
  const grad = new Float64Array(V);
  const t = m.target?.[b] ?? -1;
  switch (m.name) {
    case 'logit':
      grad[t] = 1;
      return { value: logits[t], grad };
    case 'logit_diff': {
      const d = m.distractor![b];
      grad[t] += 1;
      grad[d] -= 1;
      return { value: logits[t] - logits[d], grad };
    }
    case 'logprob':
    case 'loss':
    case 'prob': {
      // d logp_t / d z = onehot(t) - softmax(z); prob multiplies by p_t; loss negates.
      const lp = logSoftmax(logits);
      const scale = m.name === 'prob' ? Math.exp(lp[t]) : m.name === 'loss' ? -1 : 1;
      for (let i = 0; i < V; i++) grad[i] = -scale * Math.exp(lp[i]);
      grad[t] += scale;
      const value = m.name === 'prob' ? Math.exp(lp[t]) : m.name === 'loss' ? -lp[t] : lp[t];
      return { value, grad };
    }
    case 'kl': {
      // KL(p || q) = sum p (log p - log q); d/dz_q = q - p.
      const p = logSoftmax(m.clean![b]);
      const q = logSoftmax(logits);
      let kl = 0;
      for (let i = 0; i < V; i++) {
        const pi = Math.exp(p[i]);
        kl += pi * (p[i] - q[i]);
        grad[i] = Math.exp(q[i]) - pi;
      }
      return { value: kl, grad };
    }
  }
}
