// Findings are written and read as plain files only: hard links, FIFOs, devices and a symlinked
// folder are refused (nothing outside the folder is written through or read), writes are atomic
// (temp file + rename) and asynchronous (a FIFO cannot hang the server), "x.md.md" is refused, and
// the finding size limit is reachable through the request limits.
import { execFileSync } from 'node:child_process';
import { existsSync, linkSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callTool, ToolError, type ToolContext } from '../../tools/define.ts';
import { listFindingsTool, readFinding, writeFindingTool } from '../../tools/findings.ts';
import { checkRequestSize, LIMITS } from '../../tools/limits.ts';
import type { ModelSession } from '../../tools/session.ts';
import { ActivationStore } from '../../tools/store/index.ts';

const root = mkdtempSync(join(tmpdir(), 'ns-findings-'));
const dataDir = join(root, 'data');
const folder = join(dataDir, 'findings');
let ctx: ToolContext;
beforeAll(async () => {
  ctx = { store: await ActivationStore.open({ dataDir, log: () => undefined }), session: null as unknown as ModelSession };
});
afterAll(async () => {
  await ctx.store.close();
  rmSync(root, { recursive: true, force: true });
});

const write = (args: Record<string, unknown>) => callTool(writeFindingTool, args, ctx);
const refused = async (args: Record<string, unknown>, pattern: RegExp) => {
  const e = await write(args).then(() => null, (x: unknown) => x);
  expect(e, JSON.stringify(args).slice(0, 80)).toBeInstanceOf(ToolError);
  expect((e as Error).message).toMatch(pattern);
};

describe('write_finding attacks', () => {
  it('refuses to write through a hard link, leaving the outside file untouched', async () => {
    const outside = join(root, 'outside.txt');
    writeFileSync(outside, 'precious');
    mkdirSync(folder, { recursive: true });
    linkSync(outside, join(folder, 'linked.md'));
    await refused({ name: 'linked', markdown: '# replaced', overwrite: true }, /hard link \(2 names for one file\)/);
    expect(readFileSync(outside, 'utf8')).toBe('precious');
    await expect(readFinding(dataDir, 'linked')).rejects.toThrow(/hard link/);
  });

  it('refuses a FIFO named x.md without hanging, for writing, reading and listing', async () => {
    execFileSync('mkfifo', [join(folder, 'pipe.md')]);
    await refused({ name: 'pipe', markdown: '# into the pipe', overwrite: true }, /FIFO/);
    await expect(readFinding(dataDir, 'pipe')).rejects.toThrow(/FIFO/);
    const list = await callTool(listFindingsTool, {}, ctx);
    expect(list.findings.map((f) => f.name)).not.toContain('pipe');
  });

  it('refuses a link to a device (making a device node needs root)', async () => {
    symlinkSync('/dev/null', join(folder, 'null.md'));
    await refused({ name: 'null', markdown: '# x', overwrite: true }, /symbolic link/);
    await expect(readFinding(dataDir, 'null')).rejects.toThrow(/symbolic link/);
  });

  it('refuses "x.md.md", which would list as one name and read back as another', async () => {
    await refused({ name: 'x.md.md', markdown: '# x' }, /finding name "x\.md\.md" is not allowed/);
    const ok = await write({ name: 'plain.md', markdown: '# plain' });
    expect(ok.name).toBe('plain');
  });

  it('writes atomically (temp file renamed into place), replaces only with overwrite, leaves no temp files', async () => {
    const a = await write({ name: 'atomic', markdown: '# First\n\nv1' });
    const before = statSync(a.path).ino;
    await refused({ name: 'atomic', markdown: '# Second' }, /already exists; choose another name or pass overwrite: true/);
    await write({ name: 'atomic', markdown: '# Second\n\nv2', overwrite: true });
    expect(readFileSync(a.path, 'utf8')).toBe('# Second\n\nv2\n');
    expect(statSync(a.path).ino).not.toBe(before); // a new file took the name; the old inode was never written through
    expect(statSync(a.path).nlink).toBe(1);
    expect(readdirSync(folder).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('refuses a findings folder that is a symbolic link', async () => {
    const other = join(root, 'other-data');
    const elsewhere = join(root, 'elsewhere');
    mkdirSync(elsewhere);
    mkdirSync(other);
    symlinkSync(elsewhere, join(other, 'findings'));
    const store = await ActivationStore.open({ dataDir: other, log: () => undefined });
    try {
      const e = await callTool(writeFindingTool, { name: 'n', markdown: '# n' }, { store, session: null as unknown as ModelSession }).then(() => null, (x: unknown) => x);
      expect((e as Error).message).toMatch(/findings is a symbolic link; NeuroScope does not follow links/);
      expect(readdirSync(elsewhere)).toEqual([]);
    } finally {
      await store.close();
    }
  });
});

describe('finding size', () => {
  it('the finding limit is reachable: a finding longer than maxStringChars passes the request limits and is stored', async () => {
    const markdown = `# Long\n\n${'word '.repeat(60_000)}`; // 300k characters, over maxStringChars
    expect(markdown.length).toBeGreaterThan(LIMITS.maxStringChars);
    expect(() => checkRequestSize('write_finding', { name: 'long', markdown })).not.toThrow();
    const r = await write({ name: 'long', markdown });
    expect(r.bytes).toBe(markdown.length);
    expect(() => checkRequestSize('write_finding', { name: 'long', title: 'x'.repeat(LIMITS.maxStringChars + 1), markdown: 'm' })).toThrow(/maxStringChars/);
    await refused({ name: 'huge', markdown: 'x'.repeat(LIMITS.maxFindingBytes + 1) }, /markdown/);
    expect(existsSync(join(folder, 'huge.md'))).toBe(false);
  });
});
