// Scoring a report's structured conclusion against a gpt-oss-tiny manifest (the only suite code that reads roles).
import type { ExperimentReport, ScoreLine } from './types.ts';

type Manifest = {
  roles: Record<string, string[] | { layer: number; vector: number[] }>;
  architecture: { num_hidden_layers: number; num_attention_heads: number };
};

const ioiHeads = (m: Manifest) => ['ioi.previous_token', 'ioi.duplicate_token', 'ioi.s_inhibition', 'ioi.name_mover'].flatMap((k) => (m.roles[k] as string[]) ?? []);
const set = (xs: unknown): string => [...new Set((xs as string[]) ?? [])].sort().join(', ');
const line = (claim: string, found: unknown, planted: unknown, ok: boolean): ScoreLine => ({ claim, found: String(found), planted: String(planted), ok });

/** The polysemantic neuron mixes math and code, which are planted as separate features: a dictionary should split them. */
function dictionaryLine(d: { latentPerDomain: Record<string, { latent: number; selectivity: number } | null> } | undefined, expert: string): ScoreLine {
  const math = d?.latentPerDomain.math;
  const code = d?.latentPerDomain.code;
  const found = math && code ? `math latent ${math.latent} (${math.selectivity.toFixed(2)}), code latent ${code.latent} (${code.selectivity.toFixed(2)})` : 'none';
  const ok = Boolean(math && code && math.latent !== code.latent && math.selectivity > 0.1 && code.selectivity > 0.1);
  return line('a sparse dictionary splits the polysemantic neuron into math and code latents', found, `separate math and code features written by ${expert}`, ok);
}

/** `other`: the compared model's manifest (circuit growth), when it has one. */
export function scoreReport(slug: string, r: ExperimentReport, m: Manifest, other: Manifest | null = null): ScoreLine[] {
  const roles = (k: string) => (m.roles[k] as string[]) ?? [];
  const f = r.found;
  switch (slug) {
    case 'causal-tracing': {
      const foundInd = (f.inductionHeads as string[]) ?? [];
      return [
        line('IOI name movers', set(f.nameMovers), set(roles('ioi.name_mover')), set(f.nameMovers) === set(roles('ioi.name_mover'))),
        line('S-inhibition head (path patching)', f.sInhibition, roles('ioi.s_inhibition')[0], f.sInhibition === roles('ioi.s_inhibition')[0]),
        line('induction head (strongest head patching effect)', foundInd[0], roles('induction.induction_head')[0], foundInd[0] === roles('induction.induction_head')[0]),
        line('induction head (attention role score)', f.inductionByPattern, roles('induction.induction_head')[0], f.inductionByPattern === roles('induction.induction_head')[0]),
        line('previous-token heads (attention role score)', set(f.previousToken), set([...roles('ioi.previous_token'), ...roles('induction.previous_token')]),
          set(f.previousToken) === set([...roles('ioi.previous_token'), ...roles('induction.previous_token')])),
        line('IOI circuit (pruning)', set(f.circuit), set(ioiHeads(m)), set(f.circuit) === set(ioiHeads(m))),
      ];
    }
    case 'multi-token-steering': {
      const dir = m.roles['sentiment.direction'] as { layer: number };
      return [
        line('every-token steering beats one token', `${Number(f.shiftAll).toFixed(2)} vs ${Number(f.shiftLast).toFixed(2)}`, 'all > last', Number(f.shiftAll) > Number(f.shiftLast)),
        line('steering flips the answer', f.flipped, true, f.flipped === true),
        line('steering layer at or before the reader', f.layer, `<= ${dir.layer}`, Number(f.layer) <= dir.layer),
      ];
    }
    case 'feature-localisation': {
      const found = (f.numberNeurons as string[]) ?? [];
      const planted = roles('successor.neurons');
      const hits = found.filter((n) => planted.includes(n)).length;
      return [
        line('token classes linearly readable (best probe vs shuffled control)', `${Number(f.bestProbe).toFixed(2)} vs ${Number(f.shuffled).toFixed(2)}`, '>= 0.85 and > control + 0.3', Number(f.bestProbe) >= 0.85 && Number(f.bestProbe) > Number(f.shuffled) + 0.3),
        line('top number neurons are planted successor neurons', `${hits}/${found.length}`, `successor neurons (${planted.length})`, hits >= Math.min(found.length, planted.length) * 0.75),
        line('ablating them costs more than a control set', `${Number(f.zeroDrop).toFixed(2)} vs ${Number(f.controlDrop).toFixed(2)}`, 'planted > control', Number(f.zeroDrop) > Number(f.controlDrop) + 0.2),
      ];
    }
    case 'circuit-growth': {
      // The smaller model has fewer heads (ties: this one), as the experiment orders them.
      const heads = (x: Manifest) => x.architecture.num_hidden_layers * x.architecture.num_attention_heads;
      const [small, large] = other && heads(other) < heads(m) ? [other, m] : [m, other];
      const movers = (x: Manifest) => (x.roles['ioi.name_mover'] as string[]) ?? [];
      return [
        line('the larger model needs more heads', `${f.smallSize} -> ${f.largeSize}`, 'larger', Number(f.largeSize) > Number(f.smallSize)),
        line('name movers on the smaller model', set(f.smallMovers), set(movers(small)), set(f.smallMovers) === set(movers(small))),
        large
          ? line('redundant name movers on the larger model', set(f.largeMovers), set(movers(large)), set(f.largeMovers) === set(movers(large)))
          // without its manifest, only the redundancy itself can be checked
          : line('redundant name movers on the larger model', (f.largeMovers as string[]).length, 'more than one', (f.largeMovers as string[]).length > 1),
      ];
    }
    case 'cross-domain-entanglement': {
      const pd = f.perDomain as Record<string, string[]>;
      return [
        line('polysemantic neuron (top cross-domain)', f.polysemantic, roles('entanglement.polysemantic')[0], f.polysemantic === roles('entanglement.polysemantic')[0]),
        line('math-only neurons among the top math neurons', set(pd.math), set(roles('entanglement.math_only')), roles('entanglement.math_only').every((n) => pd.math.includes(n))),
        line('code-only neurons among the top code neurons', set(pd.code), set(roles('entanglement.code_only')), roles('entanglement.code_only').every((n) => pd.code.includes(n))),
        dictionaryLine(f.dictionary as { latentPerDomain: Record<string, { latent: number; selectivity: number } | null> } | undefined, roles('entanglement.expert')[0]),
      ];
    }
    default:
      return [];
  }
}
