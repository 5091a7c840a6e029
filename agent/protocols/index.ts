// The built-in protocols: what `investigate` runs when no LLM is configured. The question's
// phenomenon is recognised by keywords; its protocol runs the standard experiments through the same
// MCP tools an LLM would call, on the prompt sets of tools/suite/prompts.ts, and the finding says
// plainly that no LLM took part.
import type { Phenomenon } from './common.ts';

export { runProtocol, protocolFindingMarkdown } from './run.ts';
export type { Phenomenon, ProtocolReport, ExperimentRecord } from './common.ts';

const KEYWORDS: Record<Phenomenon, RegExp[]> = {
  ioi: [/\bioi\b/i, /indirect[- ]object/i, /name[- ]?mover/i, /s[- ]inhibition/i, /\bwho (gave|got|received)\b/i, /\bgave (a|the) \w+ to\b/i],
  induction: [/induction/i, /repeated (random )?(sequence|token|text)/i, /\bcopy(ing)? (the )?(next|previous|earlier)/i, /in-context copying/i, /previous[- ]token head/i],
  successor: [/successor/i, /next number/i, /\bn ?\+ ?1\b/i, /\bcounting\b|\bcount(s)? (up|on)\b/i, /\bincrement/i, /number sequence/i, /\b\d+ \d+ \d+\b/],
  sentiment: [/sentiment/i, /\bsteer/i, /\bpositive\b|\bnegative\b/i, /\bemotion|\btone\b|\bmood\b/i],
  entanglement: [/entangle/i, /polysemantic/i, /cross[- ]domain/i, /\bmath\b.*\bcode\b|\bcode\b.*\bmath\b/i, /superposition/i, /\bdomains?\b/i],
};

export const PHENOMENA: readonly Phenomenon[] = ['ioi', 'induction', 'successor', 'sentiment', 'entanglement'];

export const PHENOMENON_NAMES: Record<Phenomenon, string> = {
  ioi: 'IOI (indirect object identification)',
  induction: 'induction',
  successor: 'successor (counting)',
  sentiment: 'sentiment steering',
  entanglement: 'cross-domain entanglement',
};

/** The phenomenon a question is about (most keyword hits; ties in the order of PHENOMENA), or null. */
export function matchPhenomenon(question: string): Phenomenon | null {
  let best: Phenomenon | null = null;
  let bestHits = 0;
  for (const p of PHENOMENA) {
    const hits = KEYWORDS[p].filter((re) => re.test(question)).length;
    if (hits > bestHits) {
      best = p;
      bestHits = hits;
    }
  }
  return best;
}
