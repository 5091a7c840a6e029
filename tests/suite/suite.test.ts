// The suite end to end on gpt-oss-tiny at a seed it was not developed on: every report written,
// plots are SVG with data in them, a checked Vega-Lite spec and a PNG rendering that is checked too, every scored conclusion matches the
// planted ground truth, and after a second (partial) run into the same store and folder every
// report's reproduce queries still return exactly its numbers and the index still lists every report.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { buildTinyModel } from '../../engine/tiny/index.ts';
import { EXPERIMENTS, runSuite } from '../../tools/suite/index.ts';
import { comparisonOpener } from '../../tools/suite/compare.ts';
import { openWorkspace } from '../../tools/workspace.ts';
import { ActivationStore } from '../../tools/store/index.ts';
import { renderSvg } from '../../tools/suite/plots.ts';
import { checkPlot, type Spec } from '../helpers/plot-check.ts';
import type { SuiteResult } from '../../tools/suite/index.ts';

/**
 * Runs every reproduce query of a suite run and compares its columns with the numbers the report
 * printed (soft assertions: one run of this slow test lists every query that is off).
 */
async function checkReproduce(r: SuiteResult, mainStore: ActivationStore): Promise<number> {
  let n = 0;
  for (const rep of r.reports) {
    for (const q of rep.reproduce ?? []) {
      const other = q.store === mainStore.file ? null : await ActivationStore.open({ file: q.store, dataDir: dirname(q.store) });
      try {
        const res = await (other ?? mainStore).query(q.sql, { maxRows: 10_000 });
        for (const [col, want] of Object.entries(q.expect)) {
          const k = res.columns.findIndex((c) => c.name === col);
          const got = res.rows.map((row) => row[k]);
          const same = k >= 0 && got.length === want.length && want.every((w, i) => (typeof w === 'number' ? Math.abs(Number(got[i]) - w) < 1e-3 : got[i] === w));
          expect.soft(same, `${rep.file}: ${q.what}: ${col}\n${q.sql}\nstore: ${JSON.stringify(got)}\nreport: ${JSON.stringify(want)}`).toBe(true);
        }
        n++;
      } catch (e) {
        expect.soft(`${(e as Error).message}`, `${rep.file}: ${q.what}\n${q.sql}`).toBe('');
      } finally {
        await other?.close();
      }
    }
  }
  return n;
}

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
        const spec = JSON.parse(readFileSync(join(out, svgFile.replace(/\.svg$/, '.vl.json')), 'utf8'));
        // Spec, SVG and its PNG rendering checked as a reader looks at them; the suite wrote that PNG beside it.
        const png = checkPlot(svgFile, svg, spec);
        const written = readFileSync(join(out, svgFile.replace(/\.svg$/, '.png')));
        expect([written.readUInt32BE(16), written.readUInt32BE(20)], `${svgFile}: PNG beside it`).toEqual([png.width, png.height]);
        // Vega numbers gradients per process (gradient_6); the drawing is otherwise the same.
        const drawing = (x: string) => x.replace(/gradient_\d+/g, 'gradient');
        expect(drawing(await renderSvg(spec)) === drawing(svg), `${svgFile} re-renders from its spec`).toBe(true);
      }
      // The store is named as it is, not as the default.
      expect(md).toContain(`store \`${ws.ctx.store.file}\``);
      expect(rep.score!.total).toBeGreaterThan(0);
      expect(rep.score!.ok, `${rep.title}: ${md.split('## Scored')[1]?.split('## Reproduce')[0]}`).toBe(rep.score!.total);
    }
    expect(steps.length).toBeGreaterThan(5);
    // Causal tracing scores heads by attribution patching first and shows how patching agrees (IO swapped: the same top head).
    const tracing = readFileSync(join(out, r.reports.find((x) => x.id === 1)!.file), 'utf8');
    expect(tracing).toContain('#### Attribution patching first, confirmed by activation patching');
    const swapRow = tracing.split('\n').find((l) => l.startsWith('| IOI, indirect object swapped | 32 |'))!;
    expect(Number(swapRow.split(' | ')[2])).toBeGreaterThanOrEqual(0.8);
    expect(swapRow.split(' | ')[4]).toMatch(/: [123]$/);
    // Both models are named the same way (built-in size and seed) in the reports.
    const growth = readFileSync(join(out, r.reports.find((x) => x.id === 4)!.file), 'utf8');
    expect(growth).toContain('Model: `tiny-s seed 4242`');
    expect(growth).toMatch(/\| tiny-s seed 4242 \| 4 \|/);
    expect(growth).toMatch(/\| tiny-m seed 4243 \| \d+ \|/);
    const growthSpec = JSON.parse(readFileSync(join(out, 'growth.vl.json'), 'utf8')) as Spec;
    expect(Math.max(...growthSpec.data.values.map((d) => Number(d.x)))).toBeLessThan(32);

    // A second, partial run into the same folder and store: the index keeps every report, and every
    // reproduce query of both runs returns exactly its report's numbers (scoped to its own ids).
    const r2 = await runSuite({ ctx: ws.ctx, modelDir: join(root, 'model'), outDir: out, only: [1, 2, 3, 5] });
    const index = readFileSync(join(out, 'index.md'), 'utf8');
    for (const rep of r.reports) expect(index).toContain(`](${rep.file})`);
    expect(index).toContain('_(earlier run)_');
    const queries = (await checkReproduce(r, ws.ctx.store)) + (await checkReproduce(r2, ws.ctx.store));
    expect(queries).toBeGreaterThan(20);
  } finally {
    await ws.close();
  }
}, 600_000);
