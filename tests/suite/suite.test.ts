// The suite end to end on gpt-oss-tiny at a seed it was not developed on: every report written,
// plots are SVG with data in them, and every scored conclusion matches the planted ground truth.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { buildTinyModel } from '../../engine/tiny/index.ts';
import { EXPERIMENTS, runSuite } from '../../tools/suite/index.ts';
import { comparisonOpener } from '../../tools/suite/compare.ts';
import { openWorkspace } from '../../tools/workspace.ts';

const root = mkdtempSync(join(tmpdir(), 'ns-suite-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

it('writes every report and index; plots hold data; conclusions match the planted ground truth', async () => {
  buildTinyModel('tiny-s', 4242, join(root, 'model'), 'clean');
  const ws = await openWorkspace(join(root, 'model'), join(root, 'data'), { threads: 1 });
  const steps: string[] = [];
  try {
    const out = join(root, 'out');
    // Circuit growth compares with tiny-m, opened as `neuroscope suite --compare DIR` opens it.
    buildTinyModel('tiny-m', 4243, join(root, 'model-m'), 'clean');
    const openOther = comparisonOpener({ modelDir: join(root, 'model'), dataDir: join(root, 'data'), compare: join(root, 'model-m'), engine: { threads: 1 } });
    const r = await runSuite({ ctx: ws.ctx, modelDir: join(root, 'model'), outDir: out, openOther, onStep: (e) => steps.push(e.message) });
    expect(r.reports.map((x) => x.id)).toEqual(EXPERIMENTS.map((e) => e.id));
    const files = readdirSync(out);
    expect(files).toContain('index.md');
    for (const rep of r.reports) {
      const md = readFileSync(join(out, rep.file), 'utf8');
      for (const heading of ['## Question', '## Method', '## Parameters', '## Results', '## Conclusion', '## Scored against the planted ground truth', '## Reproduce']) expect(md).toContain(heading);
      expect(md).toMatch(/experiment_id = 'exp_[a-z0-9]+'/);
      for (const [, svgFile] of md.matchAll(/!\[[^\]]*\]\(([^)]+\.svg)\)/g)) {
        const svg = readFileSync(join(out, svgFile), 'utf8');
        expect(svg.startsWith('<svg')).toBe(true);
        expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
        expect((svg.match(/<path|<rect/g) ?? []).length).toBeGreaterThan(5);
      }
      expect(rep.score!.total).toBeGreaterThan(0);
      expect(rep.score!.ok, `${rep.title}: ${md.split('## Scored')[1]?.split('## Reproduce')[0]}`).toBe(rep.score!.total);
    }
    expect(steps.length).toBeGreaterThan(5);
    // Both models are named the same way (built-in size and seed) in the reports.
    const growth = readFileSync(join(out, r.reports.find((x) => x.id === 4)!.file), 'utf8');
    expect(growth).toContain('Model: `tiny-s seed 4242`');
    expect(growth).toMatch(/\| tiny-s seed 4242 \| 4 \|/);
    expect(growth).toMatch(/\| tiny-m seed 4243 \| \d+ \|/);
  } finally {
    await ws.close();
  }
}, 600_000);
