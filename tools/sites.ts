// Sites as tools take them: component addresses (L3.H5 head, L1.E2 expert, L1.E2.N7 neuron, L2.P4
// residual position; parsed in engine/hook-address.ts) checked against the model, the one site ->
// hook map, and the input lists that name sites (layers, positions, heads, components).
import { z } from 'zod';
import { ToolError } from './define.ts';
import type { GptOssConfig } from '../engine/config.ts';
import { blockHook, componentName, parseSiteAddress, type BlockHookLocal, type ComponentAddress as Component, type SiteAddress } from '../engine/hook-address.ts';
import { BLOCK_HOOKS, expandHooks, HookError, listHooks, type ResolvedHook } from '../engine/hooks.ts';
import { nearestNames } from './names.ts';

export type { ComponentAddress as Component, SiteAddress } from '../engine/hook-address.ts';
export { componentName };

/** Range checks of a parsed site against the model (the address parser knows no model). */
function checkSite(text: string, c: SiteAddress, cfg: GptOssConfig): SiteAddress {
  const range = (what: string, i: number, n: number) => {
    if (i >= n) throw new ToolError(`${text}: ${what} ${i} is out of range; valid: 0..${n - 1}`);
  };
  range('layer', c.layer, cfg.numLayers);
  if (c.kind === 'head') range('head', c.head, cfg.numHeads);
  if (c.kind === 'expert' || c.kind === 'neuron') range('expert', c.expert, cfg.numExperts);
  if (c.kind === 'neuron') range('neuron', c.neuron, cfg.intermediateSize);
  return c;
}

/** A site address: a component, or `L<layer>.P<position>` (the residual stream entering the layer). */
export function parseSite(text: string, cfg: GptOssConfig): SiteAddress {
  const c = parseSiteAddress(text);
  if (!c) throw new ToolError(`"${text}" is not a site; write L<layer>.H<head>, L<layer>.E<expert>, L<layer>.E<expert>.N<neuron> or L<layer>.P<position>`);
  return checkSite(text, c, cfg);
}

/** A component address: a head, an expert or a neuron (`kind` narrows it further, e.g. to neurons only). */
export function parseComponent<K extends Component['kind'] = Component['kind']>(text: string, cfg: GptOssConfig, kind?: K): Extract<Component, { kind: K }> {
  const c = parseSiteAddress(text);
  if (!c || c.kind === 'position') throw new ToolError(`"${text}" is not a component; write L<layer>.H<head>, L<layer>.E<expert> or L<layer>.E<expert>.N<neuron>`);
  if (kind && c.kind !== kind) throw new ToolError(`"${text}" is a ${c.kind}, not a ${kind}; write ${SITE_FORM[kind]}`);
  return checkSite(text, c, cfg) as Extract<Component, { kind: K }>;
}

const SITE_FORM: Record<SiteAddress['kind'], string> = {
  head: 'L<layer>.H<head>', expert: 'L<layer>.E<expert>', neuron: 'L<layer>.E<expert>.N<neuron>', position: 'L<layer>.P<position>',
};

/**
 * The one site -> hook map of patching, ablation and circuit discovery: where each kind of site is
 * read and written. Heads act on their attention output (attn.hook_z), experts on their weighted
 * output, neurons on the expert activations, positions on the residual stream entering the layer.
 */
export const SITE_HOOK = {
  head: 'attn.hook_z', expert: 'mlp.hook_expert_out', neuron: 'mlp.hook_post', position: 'hook_resid_pre',
  resid_pre: 'hook_resid_pre', resid_mid: 'hook_resid_mid', resid_post: 'hook_resid_post', attn_out: 'hook_attn_out', mlp_out: 'hook_mlp_out',
} as const satisfies Record<string, BlockHookLocal>;
export type SiteKind = keyof typeof SITE_HOOK;

/** The hook a site of this kind at this layer is read and written at. */
export const siteHook = (kind: SiteKind, layer: number): string => blockHook(layer, SITE_HOOK[kind]);

export function checkLayers(layers: readonly number[], cfg: GptOssConfig): void {
  for (const l of layers) if (!Number.isInteger(l) || l < 0 || l >= cfg.numLayers) throw new ToolError(`layer ${l} is out of range; valid: 0..${cfg.numLayers - 1}`);
}

/** Positions may count from the end (-1 = last token). */
export function resolvePositions(positions: readonly number[] | 'all', length: number): number[] {
  if (positions === 'all') return [...Array(length).keys()];
  return positions.map((p) => {
    const q = p < 0 ? length + p : p;
    if (!Number.isInteger(q) || q < 0 || q >= length) throw new ToolError(`position ${p} is beyond the prompt; valid: 0..${length - 1} (or -1..-${length} from the end)`);
    return q;
  });
}

/**
 * A list argument that names sites (layers, heads, components...): at least one entry, each once.
 * An empty list would store an empty experiment and a repeated entry would run the same work twice,
 * so both are refused with what to write instead; leave the argument out for its default. How many
 * entries a call may give is the tool's declared limit (ToolLimits.sites).
 */
export function siteList<T extends z.ZodType>(item: T, what: string) {
  return z.array(item).min(1, `give at least one ${what}, or leave the argument out for the default`).superRefine((xs, ctx) => {
    const seen = new Set<string>();
    const repeated = new Set<string>();
    for (const x of xs) {
      const k = typeof x === 'string' ? x : JSON.stringify(x);
      if (seen.has(k)) repeated.add(k);
      seen.add(k);
    }
    if (repeated.size) ctx.addIssue({ code: 'custom', message: `lists ${[...repeated].slice(0, 10).join(', ')}${repeated.size > 10 ? ', …' : ''} more than once; give each ${what} once` });
  });
}

/**
 * Hook names and `*` patterns as exact hooks; a name or pattern that matches nothing is an error
 * naming the nearest hooks (with layers written plainly: blocks.1..., not blocks.01...).
 */
export function resolveHooks(patterns: readonly string[], numLayers: number): ResolvedHook[] {
  try {
    return expandHooks(patterns, numLayers);
  } catch (e) {
    if (!(e instanceof HookError)) throw e;
    const bad = patterns.find((p) => {
      try {
        expandHooks([p], numLayers);
        return false;
      } catch {
        return true;
      }
    }) ?? patterns[0];
    // Compare with the layer written as L, then put the caller's layer back into the suggestions.
    const layer = /^blocks\.(\d+)\./.exec(bad)?.[1];
    const general = layer === undefined ? bad : bad.replace(`blocks.${layer}.`, 'blocks.L.');
    const names = [...listHooks({ numLayers }).map((h) => h.name), ...BLOCK_HOOKS.map((h) => `blocks.*.${h.local}`)];
    const near = nearestNames(general, names, 3).map((n) => n.replace('blocks.L.', `blocks.${layer === undefined ? 'L' : Number(layer)}.`));
    throw new ToolError(`${e.message}${near.length ? `\nnearest: ${near.join(', ')}` : ''}`);
  }
}
