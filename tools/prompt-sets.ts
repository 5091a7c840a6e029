// Corrupted counterparts of task prompts, built from the prompts themselves (no ground truth read).
import { ToolError } from './define.ts';

export interface TaskExample {
  prompt: string;
  target: string;
  distractor: string;
}

export interface PatchingSet {
  clean: string[];
  corrupted: string[];
  target: string[];
  distractor: string[];
}

const words = (s: string) => s.split(/\s+/).filter(Boolean);

/** A name from `pool` that appears in none of `avoid`, chosen deterministically by index. */
function freshName(pool: string[], avoid: Set<string>, i: number): string {
  for (let k = 0; k < pool.length; k++) {
    const n = pool[(i + k) % pool.length];
    if (!avoid.has(n)) return n;
  }
  throw new ToolError('not enough distinct names in the prompt set to build a corruption');
}

/**
 * IOI corruptions (Wang et al.). "io_swap": the indirect object replaced by a fresh name, so only
 * the heads that copy the answer differ between runs; "abc": the repeated subject's second mention
 * replaced by a fresh name, so the duplicate/S-inhibition signal is gone; "names": both names
 * replaced everywhere by two fresh ones (same structure, neither answer present), so every head
 * that reads a name differs.
 */
export function ioiPatchingSet(examples: TaskExample[], kind: 'io_swap' | 'abc' | 'names'): PatchingSet {
  const pool = [...new Set(examples.flatMap((e) => [e.target, e.distractor]))].sort();
  const corrupted = examples.map((e, i) => {
    const w = words(e.prompt);
    const fresh = freshName(pool, new Set(w), i);
    if (kind === 'io_swap') return w.map((x) => (x === e.target ? fresh : x)).join(' ');
    if (kind === 'names') {
      const second = freshName(pool, new Set([...w, fresh]), i + 1);
      return w.map((x) => (x === e.target ? fresh : x === e.distractor ? second : x)).join(' ');
    }
    const last = w.lastIndexOf(e.distractor);
    if (last < 0 || w.indexOf(e.distractor) === last) throw new ToolError(`IOI prompt "${e.prompt}" does not repeat its subject "${e.distractor}"`);
    w[last] = fresh;
    return w.join(' ');
  });
  return { clean: examples.map((e) => e.prompt), corrupted, target: examples.map((e) => e.target), distractor: examples.map((e) => e.distractor) };
}

/** Groups examples by token count (word count for word-level prompts), largest group first. */
export function byLength<T extends { prompt: string }>(examples: T[]): T[][] {
  const groups = new Map<number, T[]>();
  for (const e of examples) {
    const n = words(e.prompt).length;
    groups.set(n, [...(groups.get(n) ?? []), e]);
  }
  return [...groups.values()].sort((a, b) => b.length - a.length);
}
