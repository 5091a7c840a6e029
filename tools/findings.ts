// Findings: Markdown notes written into <dataDir>/findings/<name>.md and recorded in the store with
// the experiments and runs they rest on. Names are plain file names: they cannot leave the folder.
import { readdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { z } from 'zod';
import { defineTool, ToolError } from './define.ts';
import { LIMITS } from './limits.ts';
import { ensureRealDir, readPlainFile, UnsafeFileError, writePlainFileAtomic } from './safe-file.ts';

export const FINDING_NAME_RULE = 'letters, digits, "-", "_" and "." (1 to 100 characters, starting with a letter or digit; no path separators, no "..", not ending in ".md" once the one optional ".md" is dropped)';
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

/** A name the folder listing and the file agree on: "x.md.md" would list as "x.md" and read back as "x". */
const isFindingStem = (n: string) => NAME_RE.test(n) && !n.includes('..') && !/\.md$/i.test(n);

/** The findings folder of a data dir (created); a symbolic link there is refused. */
export async function findingsDir(dataDir: string): Promise<string> {
  const dir = join(dataDir, 'findings');
  try {
    await ensureRealDir(dir);
  } catch (e) {
    throw e instanceof UnsafeFileError ? new ToolError(e.message) : e;
  }
  return dir;
}

/** A validated finding name (one trailing ".md" is dropped). Throws a ToolError naming the rule. */
export function checkFindingName(name: unknown): string {
  if (typeof name !== 'string') throw new ToolError(`a finding name must be a string of ${FINDING_NAME_RULE}`);
  const n = name.replace(/\.md$/i, '');
  if (!isFindingStem(n)) {
    throw new ToolError(`finding name ${JSON.stringify(name.length > 120 ? `${name.slice(0, 120)}…` : name)} is not allowed: use ${FINDING_NAME_RULE}, e.g. "ioi-name-movers"`);
  }
  return n;
}

/** The file of a finding: directly inside the (real) findings folder. */
export async function findingPath(dataDir: string, name: string): Promise<string> {
  return join(await findingsDir(dataDir), `${checkFindingName(name)}.md`);
}

/** A finding's Markdown, read only from a plain file (no links, FIFOs or devices). */
export async function readFinding(dataDir: string, name: string): Promise<string> {
  const file = await findingPath(dataDir, name);
  try {
    return await readPlainFile(file, LIMITS.maxFindingBytes);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new ToolError(`there is no finding named "${checkFindingName(name)}"; list_findings shows the names`);
    throw e instanceof UnsafeFileError ? new ToolError(e.message) : e;
  }
}

/** Names of the plain .md files in the findings folder. */
export async function findingFileNames(dataDir: string): Promise<string[]> {
  const dir = await findingsDir(dataDir);
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith('.md') && isFindingStem(e.name.slice(0, -3)))
    .map((e) => e.name.slice(0, -3))
    .sort();
}

export const findingUri = (name: string) => `neuroscope://findings/${name}`;

const idList = z.array(z.string().min(1).max(200)).max(200);

export const writeFindingTool = defineTool({
  name: 'write_finding',
  description:
    'Write a research finding as Markdown into the findings folder (<dataDir>/findings/<name>.md) and record it in the store with the experiment and run ids it rests on. ' +
    'Write the hypothesis, the experiments (tool, arguments, experiment/run ids, SQL), the numbers, and the conclusion with its caveats. ' +
    `Names: ${FINDING_NAME_RULE}. Refuses to replace an existing finding unless overwrite is true. ` +
    'Example: {"name": "ioi-name-movers", "title": "Name movers carry IOI", "markdown": "# Name movers carry IOI\\n\\nPatching L3.H1 restores 0.92 of the logit difference (exp_...)", "experimentIds": ["exp_..."]}',
  input: z.object({
    name: z.string().min(1).max(200).describe('file name without .md, e.g. "ioi-name-movers"'),
    markdown: z.string().min(1).max(LIMITS.maxFindingBytes).describe(`the finding, in Markdown (at most ${LIMITS.maxFindingBytes} bytes)`),
    title: z.string().min(1).max(300).optional().describe('default: the first "# " heading, else the name'),
    experimentIds: idList.optional().describe('experiment ids (exp_...) the finding rests on'),
    runIds: idList.optional().describe('run ids (run_...) it cites'),
    overwrite: z.boolean().default(false).describe('replace an existing finding of this name'),
  }).strict().meta({
    examples: [{ name: 'ioi-name-movers', title: 'Name movers carry IOI', markdown: '# Name movers carry IOI\n\nPatching L3.H1 restores 0.92 of the logit difference.', experimentIds: ['exp_0123'] }],
  }),
  output: z.object({
    findingId: z.string(), name: z.string(), title: z.string(), path: z.string(),
    uri: z.string().describe('the finding as an MCP resource'), bytes: z.number().int(),
  }),
  async run(input, ctx) {
    const name = checkFindingName(input.name);
    const bytes = Buffer.byteLength(input.markdown);
    if (bytes > LIMITS.maxFindingBytes) throw new ToolError(`the finding is ${bytes} bytes; the limit is ${LIMITS.maxFindingBytes} (maxFindingBytes in tools/limits.ts)`);
    const experimentIds = [...new Set(input.experimentIds ?? [])];
    const runIds = [...new Set(input.runIds ?? [])];
    const missing: string[] = [];
    for (const id of experimentIds) if (!(await ctx.store.getExperiment(id))) missing.push(`experiment ${id}`);
    for (const id of runIds) if (!(await ctx.store.getRun(id))) missing.push(`run ${id}`);
    if (missing.length) throw new ToolError(`the store has no ${missing.join(', ')}; cite ids that tools returned (query_activations: SELECT experiment_id FROM experiments)`);
    const heading = /^#\s+(.+)$/m.exec(input.markdown)?.[1]?.trim();
    const title = input.title ?? heading ?? name;
    const body = heading ? input.markdown : `# ${title}\n\n${input.markdown}`;
    const dir = await findingsDir(ctx.store.dataDir);
    const file = join(dir, `${name}.md`);
    try {
      await writePlainFileAtomic(dir, `${name}.md`, body.endsWith('\n') ? body : `${body}\n`, input.overwrite);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new ToolError(`a finding named "${name}" already exists; choose another name or pass overwrite: true`);
      throw new ToolError(`cannot write findings/${name}.md: ${(e as Error).message}`);
    }
    const findingId = await ctx.store.addFinding({ title, path: file, body, experimentIds, runIds });
    return { findingId, name, title, path: file, uri: findingUri(name), bytes: Buffer.byteLength(body) };
  },
});

export const listFindingsTool = defineTool({
  name: 'list_findings',
  description:
    'List the findings written so far, newest first: name, title, id, date, the experiments and runs they cite, and the resource URI to read each (neuroscope://findings/<name>). Example: {"limit": 20}',
  input: z.object({
    limit: z.number().int().min(1).max(1000).default(50),
  }).strict().meta({ examples: [{}, { limit: 20 }] }),
  output: z.object({
    count: z.number().int().describe('findings in all'),
    findings: z.array(z.object({
      name: z.string(), title: z.string(), findingId: z.string().nullable(), createdAt: z.string().nullable(),
      experimentIds: z.array(z.string()), runIds: z.array(z.string()), uri: z.string(),
    })).describe('newest first, at most limit'),
    folder: z.string(),
  }),
  async run(input, ctx) {
    const dataDir = ctx.store.dataDir;
    const dir = await findingsDir(dataDir);
    const onDisk = new Set(await findingFileNames(dataDir));
    const records = await ctx.store.listFindings({ limit: 10_000 });
    const seen = new Set<string>();
    const out: { name: string; title: string; findingId: string | null; createdAt: string | null; experimentIds: string[]; runIds: string[]; uri: string }[] = [];
    for (const r of records) {
      const name = r.path ? basename(r.path).replace(/\.md$/, '') : null;
      if (!name || seen.has(name) || !onDisk.has(name)) continue;
      seen.add(name);
      out.push({ name, title: r.title, findingId: r.findingId, createdAt: r.createdAt, experimentIds: r.experimentIds, runIds: r.runIds, uri: findingUri(name) });
    }
    // Files put into the folder by hand are findings too (read safely: they are not ours).
    for (const name of onDisk) {
      if (seen.has(name)) continue;
      seen.add(name);
      const text = await readPlainFile(join(dir, `${name}.md`), LIMITS.maxFindingBytes).catch(() => '');
      const heading = /^#\s+(.+)$/m.exec(text)?.[1]?.trim();
      out.push({ name, title: heading ?? name, findingId: null, createdAt: null, experimentIds: [], runIds: [], uri: findingUri(name) });
    }
    return { count: out.length, findings: out.slice(0, input.limit), folder: dir };
  },
});

export const FINDING_TOOLS = [writeFindingTool, listFindingsTool];
