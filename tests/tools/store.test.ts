// The DuckDB activation store against a real DuckDB file in a temp dir.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { DuckDBInstance, type DuckDBListValue } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '../../engine/rng.ts';
import { ActivationStore, SqlToolError, StoreError, TABLES, type ActivationInput, type ResultInput } from '../../tools/store/index.ts';

const root = mkdtempSync(path.join(tmpdir(), 'ns-store-test-'));
const dataDir = path.join(root, 'data');
let store: ActivationStore;
let runA: string;
let runB: string;

function f32(rng: Rng, d: number): Float32Array {
  const v = new Float32Array(d);
  for (let i = 0; i < d; i++) v[i] = rng.normal() * 3;
  return v;
}

async function expectSqlError(sql: string, code: 'refused' | 'timeout' | 'invalid', message: RegExp): Promise<SqlToolError> {
  const err = await store.query(sql).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err, `expected ${JSON.stringify(sql)} to fail`).toBeInstanceOf(SqlToolError);
  expect((err as SqlToolError).code, `${sql}: ${(err as Error).message}`).toBe(code);
  expect((err as Error).message).toMatch(message);
  return err as SqlToolError;
}

beforeAll(async () => {
  store = await ActivationStore.open({ dataDir });
  await store.addModel({ modelId: 'tiny', name: 'Tiny gpt-oss', path: '/models/tiny', config: { layers: 4, heads: 8 } });
  runA = await store.addRun({ modelId: 'tiny', prompt: 'The Eiffel Tower is in', tokenIds: [791, 469, 2013, 374, 304], tokens: ['The', ' Eiff', 'el', ' Tower', ' is in'], meta: { seed: 1 } });
  runB = await store.addRun({ modelId: 'tiny', prompt: 'The Colosseum is in', tokenIds: [791, 4349, 304], tokens: ['The', ' Colosseum', ' is in'] });
});

afterAll(async () => {
  await store?.close();
  rmSync(root, { recursive: true, force: true });
});

describe('schema', () => {
  it('creates the file under the data dir with every table, and describe() documents every column', async () => {
    expect(store.file).toBe(path.join(dataDir, 'neuroscope.duckdb'));
    expect(existsSync(store.file)).toBe(true);
    const docs = store.describe();
    expect(docs.map((d) => d.table)).toEqual(['models', 'runs', 'activations', 'experiments', 'results', 'vectors', 'findings', 'saes', 'sae_latents']);
    // The live columns, with the comments written from the same schema data.
    const live = await store.query(
      "SELECT table_name, column_name, data_type, comment FROM duckdb_columns() WHERE schema_name = 'main' ORDER BY table_name, column_index",
      { maxRows: 1000 },
    );
    for (const t of docs) {
      expect(t.description.length).toBeGreaterThan(10);
      const cols = live.rows.filter((r) => r[0] === t.table);
      expect(cols.map((r) => r[1])).toEqual(t.columns.map((c) => c.column));
      for (const c of t.columns) {
        expect(c.description.length, `${t.table}.${c.column}`).toBeGreaterThan(5);
        const row = cols.find((r) => r[1] === c.column)!;
        expect(row[2]).toBe(c.type);
        expect(row[3]).toBe(c.description);
      }
    }
    const activations = docs.find((d) => d.table === 'activations')!;
    expect(activations.columns.map((c) => `${c.column} ${c.type}`)).toEqual([
      'run_id VARCHAR', 'hook VARCHAR', 'layer INTEGER', 'position INTEGER', 'component INTEGER', 'vec FLOAT[]', 'norm FLOAT',
    ]);
  });

  it('refuses a second open of the same file in this process, however it is spelled', async () => {
    await expect(ActivationStore.open({ dataDir })).rejects.toThrow(/already open in this process/);
    await expect(ActivationStore.open({ dataDir: path.join(dataDir, 'exports', '..') })).rejects.toThrow(/already open in this process/);
    // Two concurrent opens of a fresh file: exactly one wins.
    const dir = path.join(root, 'race');
    const outcomes = await Promise.allSettled([ActivationStore.open({ dataDir: dir }), ActivationStore.open({ dataDir: dir })]);
    expect(outcomes.filter((o) => o.status === 'fulfilled').length).toBe(1);
    for (const o of outcomes) if (o.status === 'fulfilled') await o.value.close();
  });

  it('refuses the file to a second process while this one holds it', async () => {
    const storeTs = fileURLToPath(new URL('../../tools/store/index.ts', import.meta.url));
    const script = `import { ActivationStore } from ${JSON.stringify(storeTs)};
      try { await ActivationStore.open({ dataDir: ${JSON.stringify(dataDir)} }); console.log('OPENED'); }
      catch (e) { console.log('REFUSED ' + e.message); }`;
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { timeout: 60_000 });
    // The refusal names this process and the way out.
    expect(stdout).toMatch(new RegExp(`REFUSED The data directory .* is in use by process ${process.pid}\\b`));
    expect(stdout).toContain('--data DIR or NEUROSCOPE_DATA=DIR');
  });

  it('reopens an existing file idempotently with its data', async () => {
    const dir = path.join(root, 'reopen');
    const s1 = await ActivationStore.open({ dataDir: dir });
    await s1.addModel({ modelId: 'm', name: 'm' });
    await s1.close();
    const s2 = await ActivationStore.open({ dataDir: dir });
    expect((await s2.getModel('m'))?.name).toBe('m');
    expect((await s2.tableCounts()).models).toBe(1);
    await s2.close();
    await expect(s2.getModel('m')).rejects.toThrow(/closed/);
  });
});

describe('runs', () => {
  it('round-trips a run with its tokens and meta', async () => {
    const run = await store.getRun(runA);
    expect(run).toMatchObject({
      runId: runA,
      modelId: 'tiny',
      prompt: 'The Eiffel Tower is in',
      tokenIds: [791, 469, 2013, 374, 304],
      tokens: ['The', ' Eiff', 'el', ' Tower', ' is in'],
      meta: { seed: 1 },
    });
    expect(runA).toMatch(/^run_[a-z2-9]{10}$/);
    expect(new Date(run!.createdAt).getTime()).toBeGreaterThan(Date.now() - 600_000);
    expect(await store.getRun('run_missing')).toBeNull();
  });

  it('refuses runs of unregistered models and mismatched tokens', async () => {
    await expect(store.addRun({ modelId: 'nope', prompt: 'x', tokenIds: [1], tokens: ['x'] })).rejects.toThrow(/Unknown model_id nope/);
    await expect(store.addRun({ modelId: 'tiny', prompt: 'x', tokenIds: [1, 2], tokens: ['x'] })).rejects.toThrow(/differ in length/);
  });
});

describe('activations', () => {
  const D = 64;
  const rows: ActivationInput[] = [];

  beforeAll(async () => {
    // 10,000 rows: 2 runs x 4 layers x 5 positions x (heads 0..7 at hook_z, plus resid at layer/pos with no head)
    const rng = new Rng(7);
    while (rows.length < 10_000) {
      const i = rows.length;
      const runId = i % 2 === 0 ? runA : runB;
      const layer = (i >> 1) % 4;
      const position = (i >> 3) % 5;
      const kind = (i >> 5) % 9;
      rows.push(
        kind === 8
          ? { runId, hook: `blocks.${layer}.hook_resid_post`, position, vec: f32(rng, D) }
          : { runId, hook: `blocks.${layer}.attn.hook_z`, position, component: kind, vec: f32(rng, D) },
      );
    }
    rows.push({ runId: runA, hook: 'hook_embed', position: 0, vec: Array.from(f32(rng, D)) });
    expect(await store.addActivations(rows)).toBe(rows.length);
  });

  it('bulk-appends 10k rows and reads back identical float32 vectors, norms and keys', async () => {
    expect((await store.tableCounts()).activations).toBe(rows.length);
    const back = await store.getActivations({ limit: 20_000 });
    expect(back.length).toBe(rows.length);
    // Rows are not unique by key in this synthetic set, so compare as multisets of serialised rows.
    const key = (r: { runId: string; hook: string; layer?: number | null; position: number; component?: number | null; vec: ArrayLike<number> }) =>
      `${r.runId}|${r.hook}|${r.layer}|${r.position}|${r.component ?? null}|${Array.from(Float32Array.from(r.vec)).join(',')}`;
    const expected = rows.map((r) => key({ ...r, layer: /^blocks\.(\d+)/.exec(r.hook) ? Number(/^blocks\.(\d+)/.exec(r.hook)![1]) : null }));
    expect(back.map(key).sort()).toEqual(expected.sort());
    let worstNorm = 0;
    for (const r of back) {
      expect(r.vec).toBeInstanceOf(Float32Array);
      const norm = Math.sqrt(r.vec.reduce((s, x) => s + x * x, 0));
      worstNorm = Math.max(worstNorm, Math.abs(r.norm - norm) / norm);
    }
    expect(worstNorm).toBeLessThan(1e-6); // norm is stored as FLOAT
    const embed = back.find((r) => r.hook === 'hook_embed')!;
    expect(embed.layer).toBeNull();
    expect(embed.component).toBeNull();
    expect(embed.vec).toEqual(Float32Array.from(rows[rows.length - 1].vec));
  });

  it('filters by run, hook, layer, position and component', async () => {
    const heads = await store.getActivations({ runId: runB, layer: 2, position: [1, 3], component: 5 });
    const want = rows.filter((r) => r.runId === runB && r.hook === 'blocks.2.attn.hook_z' && (r.position === 1 || r.position === 3) && r.component === 5);
    expect(heads.length).toBe(want.length);
    expect(heads.length).toBeGreaterThan(0);
    expect(heads.every((r) => r.runId === runB && r.layer === 2 && r.component === 5 && [1, 3].includes(r.position))).toBe(true);
    const resid = await store.getActivations({ hook: 'blocks.0.hook_resid_post', component: null });
    expect(resid.length).toBe(rows.filter((r) => r.hook === 'blocks.0.hook_resid_post').length);
    expect((await store.getActivations({ runId: runA, limit: 7 })).length).toBe(7);
  });

  it('serialises concurrent writers on the one connection', async () => {
    const s2 = await ActivationStore.open({ dataDir: path.join(root, 'concurrent') });
    try {
      await s2.addModel({ modelId: 'm', name: 'm' });
      const run = await s2.addRun({ modelId: 'm', prompt: 'p', tokenIds: [1], tokens: ['p'] });
      const batch = (pos: number): ActivationInput[] =>
        Array.from({ length: 3000 }, (_, i) => ({ runId: run, hook: 'blocks.3.hook_mlp_out', position: pos, component: i, vec: [i, pos] }));
      // Started together: each write is its own transaction, so one failing must not undo the others.
      const done = await Promise.all([
        s2.addActivations(batch(100)),
        s2.addExperiment({ kind: 'probe' }, [{ site: 'x', value: 1 }]),
        s2.addActivations(batch(101)),
        s2.addActivations([...batch(103), { runId: 'run_nope', hook: 'h', position: 0, vec: [1] }]).catch(() => 'refused'),
        s2.addActivations(batch(102)),
        s2.query('SELECT count(*) FROM activations'),
      ]);
      expect(done[3]).toBe('refused');
      expect(await s2.tableCounts()).toMatchObject({ activations: 9000, experiments: 1, results: 1 });
      const back = await s2.getActivations({ position: 101, component: [7, 2999] });
      expect(back.map((r) => Array.from(r.vec))).toEqual([[7, 101], [2999, 101]]);
    } finally {
      await s2.close();
    }
  });

  it('writes nothing when any row is bad or a run is unknown', async () => {
    const before = (await store.tableCounts()).activations;
    const good = (n: number): ActivationInput[] => Array.from({ length: n }, (_, i) => ({ runId: runA, hook: 'blocks.1.hook_resid_pre', position: i, vec: [1, 2, 3] }));
    await expect(store.addActivations([...good(5000), { runId: 'run_nope', hook: 'blocks.1.hook_resid_pre', position: 0, vec: [1] }])).rejects.toThrow(/Unknown run_id run_nope/);
    await expect(store.addActivations([...good(5000), { runId: runA, hook: 'blocks.1.hook_resid_pre', position: 1.5, vec: [1] }])).rejects.toThrow(/position must be a 32-bit integer/);
    await expect(store.addActivations([...good(10), { runId: runA, hook: 'blocks.1.hook_resid_pre', position: 0, vec: [] }])).rejects.toThrow(/vec is empty/);
    expect((await store.tableCounts()).activations).toBe(before);
  });
});

describe('experiments and results', () => {
  it('stores result rows exactly, computing normalised effects from the experiment', async () => {
    const results: ResultInput[] = [];
    for (let layer = 0; layer < 4; layer++) {
      for (let head = 0; head < 8; head++) {
        results.push({ site: `L${layer}.H${head}`, hook: `blocks.${layer}.attn.hook_z`, layer, component: head, position: 4, value: -1 + layer + head / 8, extra: { rank: layer * 8 + head } });
      }
    }
    results.push({ site: 'resid_pre L2 P4', hook: 'blocks.2.hook_resid_pre', layer: 2, position: 4, value: 2.5, effect: 0.123 });
    results.push({ site: 'L3 N17', layer: 3, neuron: 17, value: null });
    const expId = await store.addExperiment(
      { kind: 'activation_patching', modelId: 'tiny', metric: 'logit_diff', cleanValue: 3, corruptedValue: -1, params: { clean: runA, corrupted: runB }, summary: { top: 'L3.H7' } },
      results,
    );
    expect(expId).toMatch(/^exp_/);
    const exp = await store.getExperiment(expId);
    expect(exp).toMatchObject({ kind: 'activation_patching', modelId: 'tiny', metric: 'logit_diff', cleanValue: 3, corruptedValue: -1, params: { clean: runA, corrupted: runB }, summary: { top: 'L3.H7' } });

    const back = await store.getResults(expId);
    expect(back).toEqual(
      results.map((r) => ({
        experimentId: expId,
        site: r.site,
        hook: r.hook ?? null,
        layer: r.layer ?? null,
        position: r.position ?? null,
        component: r.component ?? null,
        neuron: r.neuron ?? null,
        value: r.value,
        effect: r.effect !== undefined ? r.effect : r.value === null ? null : (r.value - -1) / (3 - -1),
        extra: (r.extra as object | undefined) ?? null,
      })),
    );
    expect(back[0].effect).toBe(0); // value == corrupted
    expect(back[31].effect).toBeCloseTo((-1 + 3 + 7 / 8 + 1) / 4, 12);

    // addResults appends to an existing experiment, with the same effect rule.
    expect(await store.addResults([{ experimentId: expId, site: 'extra', value: 3 }])).toBe(1);
    const all = await store.getResults(expId);
    expect(all.length).toBe(results.length + 1);
    expect(all.at(-1)).toMatchObject({ site: 'extra', value: 3, effect: 1 });
    await expect(store.addResults([{ experimentId: 'exp_missing', site: 's', value: 1 }])).rejects.toThrow(/Unknown experiment_id exp_missing/);
  });

  it('rolls back the experiment and every appended chunk when a late result row fails', async () => {
    const before = await store.tableCounts();
    const results: ResultInput[] = Array.from({ length: 5000 }, (_, i) => ({ site: `s${i}`, value: i, extra: i === 4500 ? { bad: 1n } : { i } }));
    await expect(store.addExperiment({ experimentId: 'exp_partial', kind: 'ablation' }, results)).rejects.toThrow(/not JSON-serialisable/);
    expect(await store.getExperiment('exp_partial')).toBeNull();
    expect(await store.tableCounts()).toEqual(before);
  });
});

describe('vectors and findings', () => {
  it('upserts vectors by name and round-trips float32 values', async () => {
    const v1 = new Float32Array([0.1, -0.2, 0.3]);
    await store.putVector({ name: 'france-dir', kind: 'steering', modelId: 'tiny', hook: 'blocks.2.hook_resid_post', vec: v1, meta: { scale: 4 } });
    expect(await store.getVector('france-dir')).toMatchObject({ kind: 'steering', layer: 2, vec: v1, meta: { scale: 4 } });
    const v2 = new Float32Array([1, 2, 3, 4]);
    await store.putVector({ name: 'france-dir', kind: 'probe', hook: 'hook_embed', vec: v2 });
    const got = await store.getVector('france-dir');
    expect(got).toMatchObject({ kind: 'probe', modelId: null, layer: null, vec: v2, meta: null });
    expect(await store.listVectors()).toEqual([{ name: 'france-dir', kind: 'probe', modelId: null, hook: 'hook_embed', layer: null, dim: 4 }]);
    expect(await store.getVector('nope')).toBeNull();
  });

  it('adds and lists findings newest first', async () => {
    const f1 = await store.addFinding({ title: 'Head L3.H7 moves the country', body: '# Finding\n...', experimentIds: ['exp_a'], runIds: [runA] });
    const f2 = await store.addFinding({ title: 'Second', path: 'findings/second.md', body: 'b' });
    const list = await store.listFindings();
    expect(list.map((f) => f.findingId)).toEqual([f2, f1]);
    expect(list[1]).toMatchObject({ title: 'Head L3.H7 moves the country', body: '# Finding\n...', experimentIds: ['exp_a'], runIds: [runA], path: null });
    expect(list[0]).toMatchObject({ path: 'findings/second.md', experimentIds: [], runIds: [] });
  });
});

describe('read-only SQL tool', () => {
  it('returns bounded JSON-safe rows with a truncated flag', async () => {
    const r = await store.query('SELECT position, component, norm, vec FROM activations ORDER BY norm DESC', { maxRows: 25 });
    expect(r.rowCount).toBe(25);
    expect(r.rows.length).toBe(25);
    expect(r.truncated).toBe(true);
    expect(r.columns).toEqual([
      { name: 'position', type: 'INTEGER' },
      { name: 'component', type: 'INTEGER' },
      { name: 'norm', type: 'FLOAT' },
      { name: 'vec', type: 'FLOAT[]' },
    ]);
    expect(Array.isArray(r.rows[0][3])).toBe(true);
    expect((r.rows[0][3] as number[]).length).toBe(64);
    expect(r.rows[0][2]).toBeGreaterThanOrEqual(r.rows[24][2] as number);

    // BIGINTs become numbers while exact and strings beyond 2^53; JSON columns are parsed.
    const small = await store.query(
      `SELECT run_id = '${runA}' AS is_a, len(token_ids) AS n, 9007199254740993::BIGINT AS big, tokens[1:2] AS first, meta FROM runs ORDER BY is_a DESC`,
    );
    expect(small.truncated).toBe(false);
    expect(small.rows).toEqual([
      [true, 5, '9007199254740993', ['The', ' Eiff'], { seed: 1 }],
      [false, 3, '9007199254740993', ['The', ' Colosseum'], null],
    ]);
    expect(JSON.parse(JSON.stringify(small))).toEqual(small);

    const exact = await store.query('SELECT * FROM range(10)', { maxRows: 10 });
    expect(exact).toMatchObject({ rowCount: 10, truncated: false });
    expect((await store.query('SELECT * FROM range(11)', { maxRows: 10 })).truncated).toBe(true);
  });

  it('accepts DESCRIBE, SHOW, SUMMARIZE, EXPLAIN, WITH and FROM-first', async () => {
    expect((await store.query('DESCRIBE activations')).rows.map((r) => r[0])).toEqual(['run_id', 'hook', 'layer', 'position', 'component', 'vec', 'norm']);
    expect((await store.query('SHOW TABLES')).rows.map((r) => r[0]).sort()).toEqual([...TABLES.map((t) => t.name), 'schema_migrations', 'store_events'].sort());
    expect((await store.query('SUMMARIZE results')).rowCount).toBe(10);
    expect((await store.query('EXPLAIN SELECT * FROM runs')).rows[0][0]).toBe('physical_plan');
    expect((await store.query('WITH x AS (SELECT layer, count(*) AS n FROM activations GROUP BY layer) SELECT sum(n) FROM x')).rows).toEqual([[10_001]]);
    expect((await store.query('FROM models SELECT model_id')).rows).toEqual([['tiny']]);
    expect((await store.query('-- comment\nSELECT 1 /* trailing */;')).rows).toEqual([[1]]);
  });

  const forbiddenStatements: [string, RegExp][] = [
    ["INSERT INTO models VALUES ('x', 'x', NULL, NULL, now())", /INSERT statements are not allowed/],
    ["UPDATE runs SET prompt = 'x'", /UPDATE statements are not allowed/],
    ['DELETE FROM activations', /DELETE statements are not allowed/],
    ['CREATE TABLE evil (a INTEGER)', /CREATE statements are not allowed/],
    ['CREATE OR REPLACE VIEW v AS SELECT 1', /CREATE statements are not allowed/],
    ['DROP TABLE runs', /DROP statements are not allowed/],
    ['ALTER TABLE runs ADD COLUMN z INTEGER', /ALTER statements are not allowed/],
    ["ATTACH '/tmp/evil.duckdb' AS evil", /ATTACH statements are not allowed/],
    ['DETACH evil', /DETACH statements are not allowed/],
    ["COPY runs TO '/tmp/runs.csv'", /COPY statements are not allowed/],
    ['INSTALL httpfs', /INSTALL statements are not allowed/],
    ['LOAD httpfs', /LOAD statements are not allowed/],
    ['SET enable_external_access = true', /SET statements are not allowed/],
    ["PRAGMA table_info('runs')", /PRAGMA statements are not allowed/],
    ["EXPORT DATABASE '/tmp/dump'", /EXPORT statements are not allowed/],
    ["IMPORT DATABASE '/tmp/dump'", /IMPORT statements are not allowed/],
    ['CALL pragma_version()', /CALL statements are not allowed/],
    ['CHECKPOINT', /CHECKPOINT statements are not allowed/],
    ['BEGIN TRANSACTION', /BEGIN statements are not allowed/],
    ['/* sneaky */ -- comment\n  DELETE FROM runs', /DELETE statements are not allowed/],
    ['SELECT 1; DROP TABLE runs', /Multiple statements are not allowed \(found 2\)/],
    ['SELECT 1; SELECT 2', /Multiple statements are not allowed/],
    ["WITH x AS (SELECT 1) INSERT INTO models SELECT 'x', 'x', NULL, NULL, now()", /Only read-only queries can run/],
    ['EXPLAIN ANALYZE DELETE FROM runs', /EXPLAIN DELETE is not allowed/],
    ["SELECT nextval('seq')", /nextval\(\) is not allowed/],
  ];

  const fileReaders: [string, RegExp][] = [
    ["SELECT * FROM read_csv('/etc/passwd')", /read_csv\(\) is not allowed/],
    ["SELECT * FROM READ_CSV_AUTO ('/etc/passwd')", /READ_CSV_AUTO\(\) is not allowed/],
    ["SELECT * FROM read_parquet('x.parquet')", /read_parquet\(\) is not allowed/],
    ["SELECT * FROM read_json('x.json')", /read_json\(\) is not allowed/],
    ["SELECT * FROM read_json_auto('x.json')", /read_json_auto\(\) is not allowed/],
    ["SELECT * FROM parquet_scan('x.parquet')", /parquet_scan\(\) is not allowed/],
    ["SELECT * FROM parquet_metadata('x.parquet')", /parquet_metadata\(\) is not allowed/],
    ["SELECT * FROM glob('/*')", /glob\(\) is not allowed/],
    ["SELECT * FROM read_text('/etc/passwd')", /read_text\(\) is not allowed/],
    ["SELECT * FROM read_blob('/etc/passwd')", /read_blob\(\) is not allowed/],
    ["SELECT * FROM sqlite_scan('x.db', 't')", /sqlite_scan\(\) is not allowed/],
    ["SELECT * FROM postgres_scan('host=x', 'public', 't')", /postgres_scan\(\) is not allowed/],
    ["SELECT * FROM query('SELECT 1')", /query\(\) is not allowed/],
    ["SELECT * FROM '/etc/passwd'", /"\/etc\/passwd" looks like a file path/],
    ["FROM 'activations.csv'", /"activations.csv" looks like a file path/],
    ['SELECT * FROM "exports.parquet"', /"exports.parquet" looks like a file path/],
    ["SUMMARIZE '/etc/passwd'", /looks like a file path/],
    ["SELECT * FROM read_parquet('s3://bucket/x.parquet')", /URLs \('s3:\/\/bucket\/x.parquet'\) are not allowed/],
    ["SELECT * FROM 'https://example.com/x.csv'", /URLs \('https:\/\/example.com\/x.csv'\) are not allowed/],
    ["WITH t AS (SELECT * FROM read_csv('/etc/passwd')) SELECT * FROM t", /read_csv\(\) is not allowed/],
    ["DESCRIBE SELECT * FROM read_csv('/etc/passwd')", /read_csv\(\) is not allowed/],
    ["SELECT * FROM/**/read_csv('/etc/passwd')", /read_csv\(\) is not allowed/],
    // A quoted function name slips past the text scan; DuckDB's own AST still names the function.
    [`SELECT * FROM "read_csv"('/etc/passwd')`, /read_csv\(\) is not allowed/],
    ["SELECT * FROM test_all_types()", /Table function test_all_types\(\) is not allowed.*Allowed table functions: range/],
  ];

  it.each(forbiddenStatements)('refuses %s', async (sql, message) => {
    const err = await expectSqlError(sql, 'refused', message);
    expect(err.message).toMatch(/Allowed|allowed/);
  });

  it.each(fileReaders)('refuses file/URL access: %s', async (sql, message) => {
    await expectSqlError(sql, 'refused', message);
  });

  it('leaves the data intact after every refusal, with the engine sandbox locked', async () => {
    expect(await store.tableCounts()).toMatchObject({ models: 1, runs: 2, activations: 10_001 });
    expect((await store.getRun(runA))?.prompt).toBe('The Eiffel Tower is in');
    const settings = await store.query(
      "SELECT name, value FROM duckdb_settings() WHERE name IN ('enable_external_access', 'lock_configuration', 'autoinstall_known_extensions') ORDER BY name",
    );
    expect(settings.rows).toEqual([
      ['autoinstall_known_extensions', 'false'],
      ['enable_external_access', 'false'],
      ['lock_configuration', 'true'],
    ]);
  });

  it('rejects parameters and reports syntax errors as invalid', async () => {
    await expectSqlError('SELECT ?', 'refused', /parameters/);
    await expectSqlError('SELECT FROM WHERE', 'invalid', /parse|Parser/i);
    await expectSqlError('SELECT * FROM no_such_table', 'invalid', /no_such_table/);
  });

  it('interrupts a slow query at the timeout and stays usable', async () => {
    const t0 = Date.now();
    await store.query('SELECT count(*) FROM range(100000000) a, range(100000) b WHERE a.range + b.range = -1', { timeoutMs: 300 }).then(
      () => expect.unreachable('the cross join should have been interrupted'),
      (e: unknown) => {
        expect(e).toBeInstanceOf(SqlToolError);
        expect((e as SqlToolError).code).toBe('timeout');
        expect((e as Error).message).toMatch(/ran longer than the 300 ms timeout/);
      },
    );
    expect(Date.now() - t0).toBeLessThan(5000);
    // A streaming scan is interrupted the same way.
    await expect(store.query('SELECT * FROM range(10000000000) WHERE range < 0', { timeoutMs: 200 })).rejects.toMatchObject({ code: 'timeout' });
    expect((await store.query('SELECT 42 AS x')).rows).toEqual([[42]]);
    expect((await store.tableCounts()).activations).toBe(10_001);
  });
});

describe('parquet export', () => {
  it('writes a Parquet file a plain DuckDB connection can read back', async () => {
    const out = await store.exportParquet('activations', 'snap/activations.parquet');
    expect(out.path).toBe(path.join(dataDir, 'exports', 'snap', 'activations.parquet'));
    expect(out.rows).toBe(10_001);
    const plain = await DuckDBInstance.create(':memory:');
    const conn = await plain.connect();
    try {
      const reader = await conn.runAndReadAll(
        `SELECT count(*)::INTEGER, count(DISTINCT run_id)::INTEGER, min(len(vec))::INTEGER FROM read_parquet('${out.path}')`,
      );
      expect(reader.getRows()).toEqual([[10_001, 2, 64]]);
      const [first] = await store.getActivations({ hook: 'hook_embed' });
      const vec = await conn.runAndReadAll(`SELECT vec FROM read_parquet('${out.path}') WHERE hook = 'hook_embed'`);
      expect(Float32Array.from((vec.getRows()[0][0] as DuckDBListValue).items as number[])).toEqual(first.vec);
    } finally {
      conn.closeSync();
      plain.closeSync();
    }
    const runs = await store.exportParquet('runs', path.join(dataDir, 'exports', 'runs.parquet'));
    expect(runs.rows).toBe(2);
  });

  it('refuses paths outside the exports directory, other extensions and unknown tables', async () => {
    await expect(store.exportParquet('runs', '../runs.parquet')).rejects.toThrow(/escapes the exports directory/);
    await expect(store.exportParquet('runs', 'a/../../../runs.parquet')).rejects.toThrow(/escapes the exports directory/);
    await expect(store.exportParquet('runs', path.join(root, 'runs.parquet'))).rejects.toThrow(/escapes the exports directory/);
    await expect(store.exportParquet('runs', 'runs.csv')).rejects.toThrow(/must end in \.parquet/);
    await expect(store.exportParquet('secrets', 'x.parquet')).rejects.toThrow(/Unknown table "secrets"/);
    mkdirSync(path.join(root, 'outside'), { recursive: true });
    symlinkSync(path.join(root, 'outside'), path.join(dataDir, 'exports', 'link'));
    await expect(store.exportParquet('runs', 'link/runs.parquet')).rejects.toThrow(/outside the exports directory/);
    expect(existsSync(path.join(root, 'outside', 'runs.parquet'))).toBe(false);
    expect(existsSync(path.join(root, 'runs.parquet'))).toBe(false);
    await expect(store.exportParquet('runs', '../runs.parquet')).rejects.toBeInstanceOf(StoreError);
  });
});
