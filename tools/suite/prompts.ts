// The prompt sets the suite runs on: a gpt-oss-tiny model's own task prompts (manifest.json
// `tasks`, never its roles), or prompts/suite/gpt-oss.json for real checkpoints.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ToolError } from '../define.ts';
import type { TaskExample } from '../prompt-sets.ts';

export interface SuitePrompts {
  source: string;
  ioi: TaskExample[];
  induction: TaskExample[];
  successor: TaskExample[];
  sentiment: TaskExample[];
  contrast: { positive: string[]; negative: string[] };
  domains: Record<string, string[]>;
  /** Word classes for probes and routing (e.g. numbers, names, sentiment words). */
  classes: Record<string, string[]>;
}

const PROMPTS_FILE = join(import.meta.dirname, '..', '..', 'prompts', 'suite', 'gpt-oss.json');

export function loadSuitePrompts(modelDir: string): SuitePrompts {
  const manifestFile = join(modelDir, 'manifest.json');
  if (existsSync(manifestFile)) {
    const m = JSON.parse(readFileSync(manifestFile, 'utf8'));
    const t = m.tasks;
    const words = m.words as Record<string, string[]>;
    return {
      source: `${manifestFile} (tasks only)`,
      ioi: t.ioi.examples, induction: t.induction.examples, successor: t.successor.examples, sentiment: t.sentiment.examples,
      contrast: t.sentiment.contrast, domains: t.entanglement.domains,
      classes: Object.fromEntries(Object.entries(words).filter(([k]) => ['names', 'numbers', 'positive', 'negative', 'places', 'objects'].includes(k))),
    };
  }
  if (!existsSync(PROMPTS_FILE)) throw new ToolError(`no prompt sets: ${modelDir} has no manifest.json and ${PROMPTS_FILE} is missing`);
  return { source: PROMPTS_FILE, ...JSON.parse(readFileSync(PROMPTS_FILE, 'utf8')) };
}

/**
 * Token-aligned induction pairs: the corrupted prompt's first half is reversed after its first word,
 * so the same tokens appear but each is followed by a different one and induction predicts the wrong
 * next token. The first word stays first so every word keeps its spacing (and its BPE tokens).
 */
export function inductionPatchingSet(examples: TaskExample[]): { clean: string[]; corrupted: string[]; target: string[]; distractor: string[] } {
  const corrupted = examples.map((e) => {
    const w = e.prompt.split(/\s+/);
    const n = Math.ceil(w.length / 2);
    return [w[0], ...w.slice(1, n).reverse(), ...w.slice(n)].join(' ');
  });
  return { clean: examples.map((e) => e.prompt), corrupted, target: examples.map((e) => e.target), distractor: examples.map((e) => e.distractor) };
}
