// The steps of the standard circuit experiments, written once: the suite (tools/suite/experiments)
// and the agent's built-in protocols (agent/protocols) run these same functions, each through its
// own ToolPort, and read the tools' typed results. Head sweeps go gradient-first: attribution
// patching (AtP* with the QK fix, for saturated attention) estimates every head from one forward
// and one backward, activation patching confirms, and the two are compared (docs/gradients.md).
import { parseSiteAddress } from '../../engine/hook-address.ts';
import { pearson } from '../linalg.ts';
import { byLength, ioiPatchingSet, type PatchingSet, type TaskExample } from '../prompt-sets.ts';
import { inductionPatchingSet } from './prompts.ts';
import type { StepResult, ToolPort } from './port.ts';

export type Grid = StepResult<'patch_activations'>['grid'];
export interface Cell {
  site: string;
  effect: number;
}

/** A layer x head (or layer x position) grid's measured cells as sites "L3.H1", in row-major order. */
export function gridCells(g: Grid): Cell[] {
  return g.rows.labels.flatMap((row, i) => g.cols.labels.map((col, j) => ({ site: `${row}.${col}`, effect: g.values[i][j] })))
    .filter((c): c is Cell => c.effect !== null && Number.isFinite(c.effect));
}

/** Largest effect first (ties in grid order). */
export const ranked = (cells: Cell[]): Cell[] => [...cells].sort((a, b) => b.effect - a.effect);

/** Sites whose effect is a real share of the strongest one (redundant carriers each hold a part). */
export function carriers(cells: Cell[], share = 0.25, floor = 0.1): string[] {
  const top = Math.max(...cells.map((x) => x.effect));
  return ranked(cells.filter((x) => x.effect >= Math.max(floor, share * top))).map((x) => x.site);
}

/** The layer of a component address (L3.H1, L2.E0, L1.P4); NaN when the text is not one. */
export const layerOf = (site: string): number => parseSiteAddress(site)?.layer ?? Number.NaN;
/** The head of a head address (L3.H1); NaN otherwise. */
export const headOf = (site: string): number => {
  const a = parseSiteAddress(site);
  return a?.kind === 'head' ? a.head : Number.NaN;
};

/** How well attribution patching's estimates agree with activation patching over the sites both measured. */
export interface Agreement {
  sites: number;
  /** Pearson correlation of the two effects over those sites. */
  pearson: number;
  /** min(k asked, heads whose |patching effect| >= MATTERS): ranks among effects near 0 are noise. */
  k: number;
  /** |AtP's top k ∩ patching's top k| / k. */
  topOverlap: number;
  atpTop: Cell[];
  patchTop: Cell[];
  /** Where patching's strongest site ranks in AtP's order (1 = first). */
  patchBestRankInAtp: number;
}

/** How many top heads the AtP-vs-patching overlap compares (and a large model's confirming sweep covers). */
export const TOP_K = 5;

/** A patching effect this large (5% of the clean-corrupted gap) counts for the top-k overlap. */
export const MATTERS = 0.05;

export function agreement(atpGrid: Grid, patchGrid: Grid, k: number): Agreement {
  const patched = new Map(gridCells(patchGrid).map((c) => [c.site, c.effect]));
  const both = gridCells(atpGrid).filter((c) => patched.has(c.site));
  const atp = ranked(both);
  const patch = ranked(both.map((c) => ({ site: c.site, effect: patched.get(c.site)! })));
  const kk = Math.max(1, Math.min(k, patch.filter((c) => Math.abs(c.effect) >= MATTERS).length));
  const atpTop = atp.slice(0, kk);
  const patchTop = patch.slice(0, kk);
  const inAtp = new Set(atpTop.map((c) => c.site));
  return {
    sites: both.length, pearson: both.length >= 2 ? pearson(both.map((c) => c.effect), both.map((c) => patched.get(c.site)!)) : Number.NaN, k: kk,
    topOverlap: kk ? patchTop.filter((c) => inAtp.has(c.site)).length / kk : Number.NaN,
    atpTop, patchTop, patchBestRankInAtp: patch.length ? atp.findIndex((c) => c.site === patch[0].site) + 1 : 0,
  };
}

export interface AttributedPatching {
  atp: StepResult<'attribution_patch'>;
  patch: StepResult<'patch_activations'>;
  agreement: Agreement;
}

/** Heads a confirming patching sweep covers in full; above it, only the layers and heads of AtP's top k. */
export const CONFIRM_ALL_HEADS = 512;

/**
 * Head patching, gradient first: attribution_patch over every head, then patch_activations over every
 * head (models up to CONFIRM_ALL_HEADS heads) or over the layers x heads of AtP's top k, and their agreement.
 */
export async function attributeThenPatch(port: ToolPort, label: string, set: PatchingSet, k = TOP_K): Promise<AttributedPatching> {
  const atp = await port.call(`${label}: attribution patching over every head (one forward and one backward)`, 'attribution_patch', { ...set, site: 'head', qkFix: true });
  const cells = gridCells(atp.grid);
  const top = ranked(cells).slice(0, k);
  const only = cells.length > CONFIRM_ALL_HEADS
    ? { layers: [...new Set(top.map((c) => layerOf(c.site)))].sort((a, b) => a - b), heads: [...new Set(top.map((c) => headOf(c.site)))].sort((a, b) => a - b) }
    : {};
  const patch = await port.call(`${label}: activation patching confirms`, 'patch_activations', { ...set, site: 'head', ...only });
  return { atp, patch, agreement: agreement(atp.grid, patch.grid, k) };
}

/** The IOI prompts the circuit experiments use: the most common length, at most 8. */
export const ioiExamples = (ioi: TaskExample[]): TaskExample[] => byLength(ioi)[0].slice(0, 8);

/** Name movers: heads that restore the answer when only the indirect object differs (patching confirms AtP). */
export async function ioiNameMovers(port: ToolPort, ioi: TaskExample[]) {
  const swap = await attributeThenPatch(port, 'IOI heads, indirect object swapped for a fresh name', ioiPatchingSet(ioi, 'io_swap'));
  const cells = gridCells(swap.patch.grid);
  return { swap, cells, nameMovers: carriers(cells) };
}

/** Heads that matter when the subject's duplicate is removed (ABC): the duplicate's detectors and signallers too. */
export const ioiAbcHeads = (port: ToolPort, ioi: TaskExample[]): Promise<AttributedPatching> =>
  attributeThenPatch(port, 'IOI heads, ABC corruption (second subject mention replaced)', ioiPatchingSet(ioi, 'abc'));

/**
 * Path patching from every earlier head into the name movers' queries (ABC corruption): the head that
 * tells them which name to avoid (S-inhibition) is the strongest sender, when its effect is over 0.1.
 * Receivers in layer 0 have no earlier heads, so they are left out; with none left there is no path.
 */
export async function ioiSInhibition(port: ToolPort, ioi: TaskExample[], nameMovers: string[]) {
  const receivers = nameMovers.filter((h) => layerOf(h) > 0);
  if (!receivers.length) return { receivers, path: null, senders: [] as Cell[], sInhibition: null };
  const path = await port.call('IOI: path patching from earlier heads into the name movers\' queries', 'path_patch', { ...ioiPatchingSet(ioi, 'abc'), receivers, receiverInput: 'q' });
  const senders = ranked(gridCells(path.grid));
  return { receivers, path, senders, sInhibition: senders[0] && senders[0].effect > 0.1 ? senders[0].site : null };
}

/** Prompts for circuit pruning: each round scores every remaining head on every prompt, so heads x prompts <= 512. */
export const circuitPromptCount = (heads: number, prompts: number): number => Math.max(2, Math.min(prompts, Math.floor(512 / heads)));

/** `k` items spread evenly over `xs` (first included), so every template in an ordered set is represented. */
export function spread<T>(xs: T[], k: number): T[] {
  if (k >= xs.length) return xs;
  return Array.from({ length: k }, (_, i) => xs[Math.floor((i * xs.length) / k)]);
}

/**
 * The IOI circuit by patching-based pruning over every head, relative to replacing BOTH names: then
 * every head the task reads is needed, including those that act before the second subject mention
 * (previous-token heads at the first one), which the ABC corruption leaves equal in both runs.
 */
export async function ioiCircuit(port: ToolPort, ioi: TaskExample[], heads: number, threshold = 0.8) {
  const prompts = spread(ioi, circuitPromptCount(heads, ioi.length));
  const result = await port.call(`IOI: circuit discovery by pruning over heads (${threshold * 100}% of the logit difference, both names replaced)`, 'find_circuit',
    { ...ioiPatchingSet(prompts, 'names'), include: ['heads'], threshold });
  return { result, prompts: prompts.length };
}

/** Induction heads: patching (confirming AtP) with the first half of each repeated sequence reversed. */
export async function inductionHeads(port: ToolPort, examples: TaskExample[]) {
  const set = inductionPatchingSet(examples);
  const heads = await attributeThenPatch(port, 'Induction heads', set);
  const cells = gridCells(heads.patch.grid);
  return { set, heads, cells, circuit: carriers(cells, 0.3) };
}
