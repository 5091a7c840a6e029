// Component addresses as researchers write them: L3.H5 (head), L1.E2 (expert), L1.E2.N7 (neuron),
// and the input lists that name sites (layers, positions, heads, components).
import { z } from 'zod';
import { ToolError } from './define.ts';
import type { GptOssConfig } from '../engine/config.ts';
import { BLOCK_HOOKS, expandHooks, HookError, listHooks, type ResolvedHook } from '../engine/hooks.ts';
import { nearestNames } from './names.ts';

export type Component =
  | { kind: 'head'; layer: number; head: number }
  | { kind: 'expert'; layer: number; expert: number }
  | { kind: 'neuron'; layer: number; expert: number; neuron: number };

export function parseComponent(text: string, cfg: GptOssConfig): Component {
  const m = /^L(\d+)\.(H|E)(\d+)(?:\.N(\d+))?$/.exec(text.trim());
  if (!m) throw new ToolError(`"${text}" is not a component; write L<layer>.H<head>, L<layer>.E<expert> or L<layer>.E<expert>.N<neuron>`);
  const layer = Number(m[1]);
  const idx = Number(m[3]);
  if (layer >= cfg.numLayers) throw new ToolError(`${text}: layer ${layer} is out of range; valid: 0..${cfg.numLayers - 1}`);
  if (m[2] === 'H') {
    if (m[4] !== undefined) throw new ToolError(`${text}: heads have no neurons`);
    if (idx >= cfg.numHeads) throw new ToolError(`${text}: head ${idx} is out of range; valid: 0..${cfg.numHeads - 1}`);
    return { kind: 'head', layer, head: idx };
  }
  if (idx >= cfg.numExperts) throw new ToolError(`${text}: expert ${idx} is out of range; valid: 0..${cfg.numExperts - 1}`);
  if (m[4] === undefined) return { kind: 'expert', layer, expert: idx };
  const neuron = Number(m[4]);
  if (neuron >= cfg.intermediateSize) throw new ToolError(`${text}: neuron ${neuron} is out of range; valid: 0..${cfg.intermediateSize - 1}`);
  return { kind: 'neuron', layer, expert: idx, neuron };
}

export function componentName(c: Component): string {
  if (c.kind === 'head') return `L${c.layer}.H${c.head}`;
  if (c.kind === 'expert') return `L${c.layer}.E${c.expert}`;
  return `L${c.layer}.E${c.expert}.N${c.neuron}`;
}

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
 * so both are refused with what to write instead; leave the argument out for its default.
 */
export function siteList<T extends z.ZodType>(item: T, what: string, max?: number) {
  const list = z.array(item).min(1, `give at least one ${what}, or leave the argument out for the default`);
  return (max === undefined ? list : list.max(max, `at most ${max} ${what}s in one call`)).superRefine((xs, ctx) => {
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
  for (const p of patterns) {
    const m = /^blocks\.(\d+)\.(.+)$/.exec(p);
    if (m && String(Number(m[1])) !== m[1]) throw new ToolError(`hook "${p}": write the layer as a plain number: blocks.${Number(m[1])}.${m[2]}`);
  }
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
    const names = [...listHooks({ numLayers }).map((h) => h.name), ...BLOCK_HOOKS.map((h) => `blocks.*.${h.local}`)];
    const near = nearestNames(bad.replace(/^blocks\.\d+\./, 'blocks.L.'), names, 3).map((n) => n.replace(/^blocks\.L\./, `blocks.${/^blocks\.(\d+)\./.exec(bad)?.[1] ?? 'L'}.`));
    throw new ToolError(`${e.message}${near.length ? `\nnearest: ${near.join(', ')}` : ''}`);
  }
}
