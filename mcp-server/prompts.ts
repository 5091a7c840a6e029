// The experiment templates of prompts/experiments/*.md as MCP prompts. A template is Markdown with
// a small front matter (title, description, arguments) and {{argument}} placeholders:
//
//   ---
//   title: Causal tracing of a known circuit
//   description: ...
//   arguments:
//     clean: required | a prompt where the behaviour happens
//     distractor: optional = the default text | the competing answer
//   ---
//   body with {{clean}} and {{distractor}}
import { readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface PromptArgument {
  name: string;
  description: string;
  required: boolean;
  /** Text used when an optional argument is not given. */
  default?: string;
}

export interface ExperimentPrompt {
  name: string;
  title: string;
  description: string;
  arguments: PromptArgument[];
  body: string;
}

export const EXPERIMENTS_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'prompts', 'experiments');

export class PromptTemplateError extends Error {}

export function parsePromptTemplate(name: string, text: string): ExperimentPrompt {
  const m = /^---\r?\n([\s\S]*?)\r?\n---\r?\n([\s\S]*)$/.exec(text);
  if (!m) throw new PromptTemplateError(`${name}: missing front matter (--- ... ---)`);
  const [, head, body] = m;
  let title = name;
  let description = '';
  const args: PromptArgument[] = [];
  let inArgs = false;
  for (const line of head.split(/\r?\n/)) {
    if (!line.trim()) continue;
    const arg = /^\s+([A-Za-z_][A-Za-z0-9_]*):\s*(required|optional)(?:\s*=\s*([^|]*?))?\s*\|\s*(.+)$/.exec(line);
    if (inArgs && arg) {
      args.push({ name: arg[1], required: arg[2] === 'required', default: arg[3]?.trim() || undefined, description: arg[4].trim() });
      continue;
    }
    const kv = /^([a-z]+):\s*(.*)$/.exec(line);
    if (!kv) throw new PromptTemplateError(`${name}: cannot read front matter line ${JSON.stringify(line)}`);
    inArgs = kv[1] === 'arguments';
    if (kv[1] === 'title') title = kv[2].trim();
    else if (kv[1] === 'description') description = kv[2].trim();
    else if (!inArgs) throw new PromptTemplateError(`${name}: unknown front matter key "${kv[1]}"`);
  }
  const declared = new Set(args.map((a) => a.name));
  for (const [, p] of body.matchAll(/\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g)) {
    if (!declared.has(p)) throw new PromptTemplateError(`${name}: placeholder {{${p}}} is not a declared argument`);
  }
  return { name, title, description, arguments: args, body };
}

export function loadExperimentPrompts(dir = EXPERIMENTS_DIR): ExperimentPrompt[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.md'))
    .sort()
    .map((f) => parsePromptTemplate(basename(f, '.md'), readFileSync(join(dir, f), 'utf8')));
}

/** The template with its placeholders filled; throws naming a missing required argument. */
export function renderPrompt(p: ExperimentPrompt, values: Record<string, string | undefined>): string {
  for (const a of p.arguments) {
    if (a.required && !values[a.name]?.trim()) throw new PromptTemplateError(`prompt ${p.name} needs the argument "${a.name}" (${a.description})`);
  }
  const byName = new Map(p.arguments.map((a) => [a.name, a]));
  return p.body.replace(/\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g, (_, n: string) => {
    const v = values[n]?.trim();
    if (v) return v;
    return byName.get(n)?.default ?? '(not given)';
  });
}
