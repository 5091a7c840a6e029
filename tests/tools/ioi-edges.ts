// The planted IOI circuit of a built-in model as edges of the edge-attribution graph, and a
// corruption that exercises all of them (tests only: the tools never see the manifest).
import type { Manifest } from '../../engine/tiny/index.ts';
import { ioiPatchingSet, type PatchingSet } from '../../tools/prompt-sets.ts';

/** KV group of "L<l>.H<h>" for a model with `group` query heads per KV head. */
function kvOf(head: string, group: number): string {
  const [, l, h] = /^L(\d+)\.H(\d+)$/.exec(head)!;
  return `L${l}.KV${Math.floor(Number(h) / group)}`;
}

/**
 * Edges the construction wires (engine/tiny/README.md): previous-token head v reads the token; the
 * duplicate head's q reads the token and its k, v read the previous-token head; the S-inhibition
 * head's k, v read the duplicate head; each name mover's q reads the S-inhibition head, its k, v the
 * token, and it writes the logits. Negative name movers (realistic style) are wired like name movers
 * (and write against the answer); backups are left out: the primaries' flag keeps them silent.
 */
export function plantedIoiEdges(m: Manifest, group: number): string[] {
  const [pt] = m.roles['ioi.previous_token'] as string[];
  const [dup] = m.roles['ioi.duplicate_token'] as string[];
  const [sinh] = m.roles['ioi.s_inhibition'] as string[];
  const movers = [...(m.roles['ioi.name_mover'] as string[]), ...((m.roles['ioi.negative_name_mover'] as string[] | undefined) ?? [])];
  return [
    `embed->${kvOf(pt, group)}.v`, `embed->${dup}.q`, `${pt}->${kvOf(dup, group)}.k`, `${pt}->${kvOf(dup, group)}.v`,
    `${dup}->${kvOf(sinh, group)}.k`, `${dup}->${kvOf(sinh, group)}.v`,
    ...movers.flatMap((nm) => [`${sinh}->${nm}.q`, `embed->${kvOf(nm, group)}.k`, `embed->${kvOf(nm, group)}.v`, `${nm}->logits`]),
  ];
}

/**
 * Half the examples replace the second subject (S2: exercises the duplicate head's query), half the
 * first (S1: exercises the previous-token head and what reads it).
 */
export function ioiEdgeSet(m: Manifest, n: number): PatchingSet {
  const ex = m.tasks.ioi.examples.slice(0, n);
  const abc = ioiPatchingSet(ex, 'abc');
  const corrupted = ex.map((e, i) => {
    if (i % 2 === 0) return abc.corrupted[i];
    // The S2 replacement's fresh name, moved to S1.
    const w = e.prompt.split(' ');
    const fresh = abc.corrupted[i].split(' ')[w.lastIndexOf(e.distractor)];
    w[w.indexOf(e.distractor)] = fresh;
    return w.join(' ');
  });
  return { ...abc, corrupted };
}
