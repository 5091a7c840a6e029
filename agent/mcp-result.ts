// Ids in tool results. Results arrive typed (structuredContent), so ids are read from the object;
// the id patterns also find ids a language model wrote into its own text.

export const EXPERIMENT_ID = /\bexp_[A-Za-z0-9]+\b/g;
export const RUN_ID = /\brun_[A-Za-z0-9]+\b/g;

/** Experiment and run ids mentioned in a text, in order of first mention. */
export function idsIn(text: string): { experimentIds: string[]; runIds: string[] } {
  return { experimentIds: [...new Set(text.match(EXPERIMENT_ID) ?? [])], runIds: [...new Set(text.match(RUN_ID) ?? [])] };
}

/** Experiment and run ids in a structured result (every string value that is one), in order of first appearance. */
export function idsOf(result: unknown): { experimentIds: string[]; runIds: string[] } {
  const experimentIds = new Set<string>();
  const runIds = new Set<string>();
  const walk = (v: unknown, depth: number): void => {
    if (depth > 8) return;
    if (typeof v === 'string') {
      if (/^exp_[A-Za-z0-9]+$/.test(v)) experimentIds.add(v);
      else if (/^run_[A-Za-z0-9]+$/.test(v)) runIds.add(v);
    } else if (Array.isArray(v)) v.forEach((x) => walk(x, depth + 1));
    else if (v && typeof v === 'object') Object.values(v).forEach((x) => walk(x, depth + 1));
  };
  walk(result, 0);
  return { experimentIds: [...experimentIds], runIds: [...runIds] };
}
