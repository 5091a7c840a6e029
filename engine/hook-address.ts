// Addresses as typed values: the one builder and the one parser of hook names
// (`hook_embed`, `blocks.L.<local>`, `blocks.L.<site>.sae.<part>`) and of component addresses as
// researchers write them (`L3.H5` head, `L1.E2` expert, `L1.E2.N7` neuron, `L2.P4` residual
// position). Code that needs a hook name builds it here (`blockHook(3, 'attn.hook_z')`, where a
// misspelt local is a type error) and code that reads one parses it here; nothing else takes names
// apart with regular expressions.

/** Hook names within a block, in forward order (hooks.ts documents each). */
export const BLOCK_LOCALS = [
  'hook_resid_pre', 'ln1.hook_normalized', 'attn.hook_q', 'attn.hook_k', 'attn.hook_v', 'attn.hook_rot_q', 'attn.hook_rot_k',
  'attn.hook_attn_scores', 'attn.hook_pattern', 'attn.hook_sink', 'attn.hook_z', 'attn.hook_result', 'hook_attn_out',
  'hook_resid_mid', 'ln2.hook_normalized', 'mlp.hook_router_logits', 'mlp.hook_expert_indices', 'mlp.hook_expert_weights',
  'mlp.hook_pre', 'mlp.hook_post', 'mlp.hook_expert_out', 'hook_mlp_out', 'hook_resid_post',
] as const;
export type BlockHookLocal = (typeof BLOCK_LOCALS)[number];

/** Hooks outside the blocks: before the first (embed) and after the last (unembed). */
export const GLOBAL_LOCALS = ['hook_embed', 'ln_final.hook_normalized', 'hook_logits'] as const;
export type GlobalHookLocal = (typeof GLOBAL_LOCALS)[number];

/** Block hooks a dictionary can splice in at (they are computed in JS), and the two hooks it adds. */
export const SAE_SITES = ['hook_resid_pre', 'hook_mlp_out', 'hook_resid_post'] as const;
export type SaeSiteLocal = (typeof SAE_SITES)[number];
export const SAE_PARTS = ['hook_sae_acts', 'hook_sae_error'] as const;
export type SaePart = (typeof SAE_PARTS)[number];

export type HookAddress =
  | { kind: 'global'; local: GlobalHookLocal }
  | { kind: 'block'; layer: number; local: BlockHookLocal }
  /** A dictionary's hook under the block hook it is attached at. */
  | { kind: 'sae'; layer: number; site: SaeSiteLocal; part: SaePart };

export class HookError extends Error {}

export const blockHook = (layer: number, local: BlockHookLocal): string => inBlock(layer, local);
/** The full name of a local name taken from a resolved hook (`spec.local`, which includes dictionary hooks). */
export const inBlock = (layer: number, local: string): string => `blocks.${layer}.${local}`;
export const saeHook = (layer: number, site: SaeSiteLocal, part: SaePart): string => inBlock(layer, saeLocal(site, part));

/** A dictionary's hooks by the full name of the block hook it is attached at (`blocks.2.hook_resid_post`). */
export function saeHooksAt(site: string): Record<SaePart, string> {
  const a = parseHookName(site);
  if (a.kind !== 'block' || !isSaeSite(a.local)) throw new HookError(`dictionaries splice in at blocks.L.{${SAE_SITES.join(', ')}} only, not at "${site}"`);
  const at = a.local;
  return { hook_sae_acts: saeHook(a.layer, at, 'hook_sae_acts'), hook_sae_error: saeHook(a.layer, at, 'hook_sae_error') };
}

/** A dictionary hook's local name under its site's local name (`hook_resid_post.sae.hook_sae_acts`). */
export const saeLocal = (siteLocal: string, part: SaePart): string => `${siteLocal}.sae.${part}`;

export function hookName(a: HookAddress): string {
  if (a.kind === 'global') return a.local;
  return a.kind === 'block' ? blockHook(a.layer, a.local) : saeHook(a.layer, a.site, a.part);
}

/** The name within its block (`attn.hook_z`, `hook_resid_post.sae.hook_sae_acts`), or the global name. */
export function localName(a: HookAddress): string {
  return a.kind === 'sae' ? saeLocal(a.site, a.part) : a.local;
}

const isBlockLocal = (s: string): s is BlockHookLocal => (BLOCK_LOCALS as readonly string[]).includes(s);
const isGlobalLocal = (s: string): s is GlobalHookLocal => (GLOBAL_LOCALS as readonly string[]).includes(s);
const isSaeSite = (s: string): s is SaeSiteLocal => (SAE_SITES as readonly string[]).includes(s);
const isSaePart = (s: string): s is SaePart => (SAE_PARTS as readonly string[]).includes(s);

/**
 * Reads an exact hook name. Throws HookError saying which part is wrong (the layer is not a plain
 * number, the local name is unknown, a dictionary hook sits at a site dictionaries cannot use).
 * Layer ranges depend on the model and are checked by resolveHook.
 */
export function parseHookName(name: string): HookAddress {
  if (isGlobalLocal(name)) return { kind: 'global', local: name };
  if (!name.startsWith('blocks.')) throw new HookError(`unknown hook "${name}"`);
  const rest = name.slice('blocks.'.length);
  const dot = rest.indexOf('.');
  const layerText = dot < 0 ? rest : rest.slice(0, dot);
  const local = dot < 0 ? '' : rest.slice(dot + 1);
  if (!/^\d+$/.test(layerText)) throw new HookError(`unknown hook "${name}": "${layerText}" is not a layer number`);
  const layer = Number(layerText);
  if (String(layer) !== layerText) throw new HookError(`hook "${name}": write the layer as a plain number: blocks.${layer}.${local}`);
  if (isBlockLocal(local)) return { kind: 'block', layer, local };
  const sae = local.indexOf('.sae.');
  if (sae > 0) {
    const site = local.slice(0, sae);
    const part = local.slice(sae + '.sae.'.length);
    if (!isSaePart(part)) throw new HookError(`unknown hook "${name}": a dictionary adds ${SAE_PARTS.map((p) => `.sae.${p}`).join(' and ')}, not .sae.${part}`);
    if (!isSaeSite(site)) throw new HookError(`hook "${name}": dictionaries splice in at blocks.L.{${SAE_SITES.join(', ')}} only, not at "${site}"`);
    return { kind: 'sae', layer, site, part };
  }
  throw new HookError(`unknown hook "${name}": no block hook "${local}"`);
}

// ---- component addresses ---------------------------------------------------------------------

export type ComponentAddress =
  | { kind: 'head'; layer: number; head: number }
  | { kind: 'expert'; layer: number; expert: number }
  | { kind: 'neuron'; layer: number; expert: number; neuron: number };

/** A component, or the residual stream entering a layer at one position (negative: from the end). */
export type SiteAddress = ComponentAddress | { kind: 'position'; layer: number; position: number };

export function componentName(c: SiteAddress): string {
  switch (c.kind) {
    case 'head': return `L${c.layer}.H${c.head}`;
    case 'expert': return `L${c.layer}.E${c.expert}`;
    case 'neuron': return `L${c.layer}.E${c.expert}.N${c.neuron}`;
    case 'position': return `L${c.layer}.P${c.position}`;
  }
}

/** Reads `L<l>.H<h>`, `L<l>.E<e>`, `L<l>.E<e>.N<n>` or `L<l>.P<p>`; null when the text is none of them. Ranges are the caller's (they depend on the model). */
export function parseSiteAddress(text: string): SiteAddress | null {
  const m = /^L(\d+)\.(?:H(\d+)|E(\d+)(?:\.N(\d+))?|P(-?\d+))$/.exec(text.trim());
  if (!m) return null;
  const layer = Number(m[1]);
  if (m[2] !== undefined) return { kind: 'head', layer, head: Number(m[2]) };
  if (m[5] !== undefined) return { kind: 'position', layer, position: Number(m[5]) };
  const expert = Number(m[3]);
  return m[4] === undefined ? { kind: 'expert', layer, expert } : { kind: 'neuron', layer, expert, neuron: Number(m[4]) };
}
