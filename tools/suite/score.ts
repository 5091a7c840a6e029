// Scoring a report's structured conclusion against a gpt-oss-tiny manifest (the only suite code that reads roles).
import type { ExperimentReport, ScoreLine } from './types.ts';

type Manifest = { roles: Record<string, string[] | { layer: number; vector: number[] }> };

const ioiHeads = (m: Manifest) => ['ioi.previous_token', 'ioi.duplicate_token', 'ioi.s_inhibition', 'ioi.name_mover'].flatMap((k) => (m.roles[k] as string[]) ?? []);
const set = (xs: unknown): string => [...new Set((xs as string[]) ?? [])].sort().join(', ');
const line = (claim: string, found: unknown, planted: unknown, ok: boolean): ScoreLine => ({ claim, found: String(found), planted: String(planted), ok });

export function scoreReport(slug: string, r: ExperimentReport, m: Manifest): ScoreLine[] {
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
    default:
      return [];
  }
}
