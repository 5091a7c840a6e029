// Component addresses as researchers write them: L3.H5 (head), L1.E2 (expert), L1.E2.N7 (neuron).
import { ToolError } from './define.ts';
import type { GptOssConfig } from '../engine/config.ts';

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
