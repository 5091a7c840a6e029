// The SQL tool is bounded in time, memory and bytes: values too large for DuckDB to interrupt are
// refused before running, rows are cut at a byte budget measured before conversion (with the limit
// named), the timeout covers reading the rows, and a long query does not hold up other queries.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callTool } from '../../tools/define.ts';
import type { ModelSession } from '../../tools/session.ts';
import { queryActivationsTool } from '../../tools/store-tools.ts';
import { ActivationStore, SqlToolError } from '../../tools/store/index.ts';
import { MAX_BUILT_CHARS, MAX_BUILT_ELEMENTS } from '../../tools/store/value-size.ts';

const root = mkdtempSync(join(tmpdir(), 'ns-sql-bounds-'));
let store: ActivationStore;
beforeAll(async () => {
  store = await ActivationStore.open({ dataDir: root, log: () => undefined });
  await store.addModel({ modelId: 'm', name: 'm' });
  const run = await store.addRun({ modelId: 'm', prompt: 'p', tokenIds: [1, 2, 3], tokens: ['a', 'b', 'c'] });
  await store.addActivations(Array.from({ length: 300 }, (_, i) => ({ runId: run, hook: `blocks.${i % 3}.hook_resid_post`, position: i, vec: new Float32Array(1000).fill(i) })));
});
afterAll(async () => {
  await store.close();
  rmSync(root, { recursive: true, force: true });
});

const refusal = async (sql: string) => {
  const e = await store.query(sql).then(() => null, (x: unknown) => x);
  expect(e, sql).toBeInstanceOf(SqlToolError);
  expect((e as SqlToolError).code).toBe('refused');
  return (e as SqlToolError).message;
};

describe('values DuckDB could not interrupt are refused before running', () => {
  it('the issue\'s two heavy queries', async () => {
    expect(await refusal('SELECT range(50000000) AS l')).toMatch(/range\(\) would build a list of 50,000,000 elements; one value may hold at most 4,096 \(MAX_BUILT_ELEMENTS\)/);
    expect(await refusal("SELECT repeat('x',1000000) FROM range(2001)")).toMatch(/repeat\(\) would build a value of 1,000,000 characters .* at most 100,000 \(MAX_BUILT_CHARS\)/);
  });

  it('computed sizes, arithmetic, pads and printf widths', async () => {
    expect(await refusal('SELECT range(5 * 10000000)')).toMatch(/50,000,000 elements/);
    expect(await refusal('SELECT generate_series(1, (SELECT 100))')).toMatch(/needs constant arguments/);
    expect(await refusal("SELECT lpad('x', 200000, 'y')")).toMatch(/lpad\(\) would build a string of 200,000 characters/);
    expect(await refusal("SELECT printf('%0100000000d', 1)")).toMatch(/pads to 100,000,000 characters/);
    expect(await refusal('SELECT list_resize([1], 20000)')).toMatch(/list_resize\(\) would build a list of 20,000 elements/);
  });

  it('keeps ordinary uses: table functions stream, small values pass', async () => {
    expect((await store.query('SELECT count(*) FROM range(100000)')).rows).toEqual([[100000]]);
    expect((await store.query(`SELECT len(range(${MAX_BUILT_ELEMENTS})), len(repeat('ab', ${MAX_BUILT_CHARS / 2}))`)).rows).toEqual([[MAX_BUILT_ELEMENTS, MAX_BUILT_CHARS]]);
    expect((await store.query('SELECT range(position) FROM activations WHERE position < 3 ORDER BY position').catch((e: Error) => e.message))).toMatch(/needs constant arguments/);
  });
});

describe('byte budget and timeout', () => {
  it('cuts rows at the byte budget, measured before conversion, and names the limit', async () => {
    const r = await store.query("SELECT repeat('x', 100000) AS s FROM range(2001)", { maxRows: 2000, maxBytes: 1_000_000 });
    expect(r.truncated).toBe(true);
    expect(r.cut).toMatchObject({ limit: 'maxBytes', value: 1_000_000 });
    expect(r.rowCount).toBe(9); // 9 x 100,004 bytes fit in 1,000,000; the tenth does not
    expect(r.bytes).toBeLessThanOrEqual(1_000_000);
    expect(r.cut!.message).toMatch(/passed the 1000000-byte budget \(maxBytes\) after 9 rows/);
    const vecs = await store.query('SELECT vec FROM activations', { maxRows: 300, maxBytes: 500_000 });
    expect(vecs.cut?.limit).toBe('maxBytes');
    expect(vecs.rowCount).toBe(31); // 1000 floats at 16 bytes each = 16,003 bytes a row
    const rows = await store.query('SELECT * FROM range(50)', { maxRows: 10 });
    expect(rows.cut).toMatchObject({ limit: 'maxRows', value: 10 });
  });

  it('measures NULLs as NULLs (their slots hold garbage lengths)', async () => {
    for (let i = 0; i < 5; i++) {
      const r = await store.query("SELECT NULL::VARCHAR AS s, NULL::FLOAT[] AS l, CASE WHEN x % 2 = 0 THEN 'a' END AS t FROM range(500) t(x)", { maxRows: 500, maxBytes: 100_000 });
      expect(r).toMatchObject({ rowCount: 500, truncated: false, cut: null });
    }
    expect((await store.query('DESCRIBE activations')).rowCount).toBe(7); // its NULL key/default columns once cut it to nothing
  });

  it('query_activations reports the cut with the limit named', async () => {
    const out = await callTool(queryActivationsTool, { sql: "SELECT repeat('x', 100000) AS s FROM range(100)", maxBytes: 250_000 }, { store, session: null as unknown as ModelSession });
    expect(out.rowCount).toBe(2);
    expect(out).toMatchObject({ truncated: true, cutBy: 'maxBytes' });
    expect(out.note).toMatch(/250000-byte budget \(maxBytes\) after 2 rows.*raise maxBytes up to 16000000/);
  });

  it('interrupts a query at its timeout without holding up other queries meanwhile', async () => {
    let slowSettled = false;
    const slow = store.query('SELECT count(*) FROM range(1000000000000)', { timeoutMs: 3000 }).then(() => null, (e: SqlToolError) => e).finally(() => (slowSettled = true));
    const others: number[] = [];
    for (let i = 0; i < 5; i++) others.push(Number((await store.query(`SELECT ${i} + 1`)).rows[0][0]));
    expect(await store.getModel('m')).not.toBeNull();
    expect(others).toEqual([1, 2, 3, 4, 5]);
    expect(slowSettled).toBe(false); // they were answered while the slow one was still running
    const e = await slow;
    expect(e?.code).toBe('timeout');
    expect(e?.message).toMatch(/longer than the 3000 ms timeout \(reading the rows included\)/);
  }, 30_000);
});
