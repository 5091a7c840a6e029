// The report section that shows how attribution patching's estimates agree with the activation
// patching that confirmed them (suite report and protocol findings alike).
import { num, table } from './markdown.ts';
import { MATTERS, TOP_K, type AttributedPatching } from './steps.ts';

export function agreementSection(sweeps: { what: string; r: AttributedPatching }[]): string {
  return [
    `Every head was first scored by attribution patching (AtP: (clean - corrupted) · gradient at the corrupted run, from one forward and one backward pass, with AtP*'s QK fix: the exact change of later heads' attention patterns), then activation patching measured the same heads. Agreement over the heads both measured: Pearson correlation of the effects, the share of patching's top k heads that are also in AtP's top k (k = up to ${TOP_K} heads, only those whose patching effect is at least ${MATTERS}: ranks among effects near 0 are noise), and where patching's strongest head ranks in AtP's order. Conclusions below rest on the patching effects.`,
    '',
    table(['sweep', 'heads', 'Pearson', 'top-k overlap', 'patching\'s top head: AtP rank', 'AtP top k (estimate)', 'patching top k (effect)', 'experiments (AtP, patching)'], sweeps.map(({ what, r }) => [
      what, r.agreement.sites, r.agreement.pearson, `${Math.round(r.agreement.topOverlap * r.agreement.k)}/${r.agreement.k}`,
      r.agreement.patchTop[0] ? `${r.agreement.patchTop[0].site}: ${r.agreement.patchBestRankInAtp}` : '–',
      r.agreement.atpTop.map((c) => `${c.site} (${num(c.effect, 2)})`).join(', '),
      r.agreement.patchTop.map((c) => `${c.site} (${num(c.effect, 2)})`).join(', '),
      `\`${r.atp.experimentId}\`, \`${r.patch.experimentId}\``,
    ])),
  ].join('\n');
}
