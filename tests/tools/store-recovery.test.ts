// Opening is idempotent and crash-safe (schema versions applied once, no DDL on a current store, an
// unreplayable write-ahead log set aside and reported), and one tool call's writes are one unit.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { callTool } from '../../tools/define.ts';
import { describeStoreTool } from '../../tools/store-tools.ts';
import { ActivationStore, MIGRATIONS, SCHEMA_VERSION } from '../../tools/store/index.ts';
import type { ModelSession } from '../../tools/session.ts';

const root = mkdtempSync(join(tmpdir(), 'ns-recovery-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const STORE_TS = join(import.meta.dirname, '..', '..', 'tools', 'store', 'index.ts');
const quiet = { log: () => undefined };
const DUCKDB = createRequire(import.meta.url).resolve('@duckdb/node-api');

/** Runs a TypeScript snippet in a child process until it prints `marker`, then SIGKILLs it. */
async function runUntilThenKill(name: string, code: string, marker: string): Promise<void> {
  const script = join(root, `${name}.mts`);
  writeFileSync(script, code);
  const child = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => d.toString().includes(marker) && resolve());
    child.on('exit', (c) => reject(new Error(`child exited early (${c}): ${err}`)));
  });
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
}

describe('opening', () => {
  it('applies the schema once: a current store gets no DDL and no WAL on open', async () => {
    const dataDir = join(root, 'current');
    const s1 = await ActivationStore.open({ dataDir, ...quiet });
    expect((await s1.query('SELECT version FROM schema_migrations ORDER BY version')).rows).toEqual(MIGRATIONS.map((m) => [m.version]));
    expect(MIGRATIONS.at(-1)!.version).toBe(SCHEMA_VERSION);
    expect((await s1.events()).map((e) => e.kind)).toEqual(['created']);
    await s1.close();
    const file = join(dataDir, 'neuroscope.duckdb');
    const size = statSync(file).size;
    for (let i = 0; i < 3; i++) {
      const s = await ActivationStore.open({ dataDir, ...quiet });
      // Opened and still open: nothing was written, so DuckDB has no write-ahead log to replay.
      expect(existsSync(`${file}.wal`) && statSync(`${file}.wal`).size > 0).toBe(false);
      await s.close();
    }
    expect(statSync(file).size).toBe(size);
    const s2 = await ActivationStore.open({ dataDir, ...quiet });
    expect((await s2.query('SELECT count(*) FROM schema_migrations')).rows).toEqual([[MIGRATIONS.length]]);
    await s2.close();
    // No side file of the creation is left behind.
    expect(readdirSync(dataDir).filter((f) => f.includes('.creating-'))).toEqual([]);
  });

  it('adopts a store made before schema versions without touching its tables', async () => {
    const dataDir = join(root, 'legacy');
    const s = await ActivationStore.open({ dataDir, ...quiet });
    await s.addModel({ modelId: 'm', name: 'm' });
    await s.close();
    // Make it look like a pre-version store: drop the bookkeeping tables with a raw instance.
    const { DuckDBInstance } = await import('@duckdb/node-api');
    const inst = await DuckDBInstance.create(join(dataDir, 'neuroscope.duckdb'));
    const c = await inst.connect();
    await c.run('DROP TABLE schema_migrations');
    await c.run('DROP TABLE store_events');
    await c.run('DROP TABLE sae_latents'); // made before the sparse-dictionary tables too
    await c.run('DROP TABLE saes');
    await c.run('CHECKPOINT');
    c.closeSync();
    inst.closeSync();
    const again = await ActivationStore.open({ dataDir, ...quiet });
    expect((await again.getModel('m'))?.name).toBe('m');
    const versions = (await again.query('SELECT version, description FROM schema_migrations ORDER BY version')).rows;
    expect(versions.map((r) => r[0])).toEqual(MIGRATIONS.map((m) => m.version));
    expect(versions[0][1]).toMatch(/adopted/);
    expect((await again.query('SELECT count(*) FROM saes')).rows).toEqual([[0]]); // version 2 applied, without DDL comments
    expect((await again.events()).map((e) => e.kind)).toEqual(['migrated']);
    await again.close();
  });

  it('sets aside a write-ahead log DuckDB cannot replay, keeps the checkpointed data and reports it in describe_store', async () => {
    const dataDir = join(root, 'bad-wal');
    const s = await ActivationStore.open({ dataDir, ...quiet });
    await s.addModel({ modelId: 'm', name: 'kept' });
    await s.close(); // checkpointed: 'kept' is in the main file
    // What start-up used to do: COMMENT ON a column with a default, killed before the checkpoint.
    await runUntilThenKill('bad-wal', `
      import duckdb from ${JSON.stringify(DUCKDB)};
      const inst = await duckdb.DuckDBInstance.create(${JSON.stringify(join(dataDir, 'neuroscope.duckdb'))});
      const c = await inst.connect();
      await c.run("COMMENT ON COLUMN runs.created_at IS 'x'");
      console.log('commented');
      setInterval(() => {}, 1000);
    `, 'commented');
    const { DuckDBInstance } = await import('@duckdb/node-api');
    await expect(DuckDBInstance.create(join(dataDir, 'neuroscope.duckdb'))).rejects.toThrow(/replaying WAL/);
    const logged: string[] = [];
    const store = await ActivationStore.open({ dataDir, log: (m) => logged.push(m) });
    try {
      expect((await store.getModel('m'))?.name).toBe('kept');
      const [ev] = await store.events();
      expect(ev.kind).toBe('wal_set_aside');
      expect(ev.detail).toMatch(/could not replay the write-ahead log .* moved to .*neuroscope\.duckdb\.wal\.unreplayable-/);
      expect(logged.join('\n')).toContain(ev.detail);
      const aside = readdirSync(dataDir).filter((f) => f.startsWith('neuroscope.duckdb.wal.unreplayable-'));
      expect(aside).toHaveLength(1);
      expect(statSync(join(dataDir, aside[0])).size).toBeGreaterThan(0);
      const described = await callTool(describeStoreTool, {}, { store, session: null as unknown as ModelSession });
      expect(described.markdown).toContain('## Store events');
      expect(described.markdown).toContain('wal_set_aside');
      expect(described.events[0]).toMatchObject({ kind: 'wal_set_aside' });
    } finally {
      await store.close();
    }
  }, 60_000);
});

describe('atomic tool calls', () => {
  it('commits a unit together, hides it from other connections until then, and rolls it back whole on error', async () => {
    const store = await ActivationStore.open({ dataDir: join(root, 'atomic'), ...quiet });
    try {
      await store.addModel({ modelId: 'm', name: 'm' });
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      let inside!: () => void;
      const written = new Promise<void>((r) => (inside = r));
      const unit = store.atomic(async () => {
        const run = await store.addRun({ modelId: 'm', prompt: 'a', tokenIds: [1], tokens: ['a'] });
        await store.addActivations([{ runId: run, hook: 'blocks.0.hook_resid_post', position: 0, vec: [1, 2] }]);
        expect((await store.getRun(run))?.prompt).toBe('a'); // the unit sees its own rows
        inside();
        await gate;
        return run;
      });
      await written;
      // Mid-unit: the SQL tool and readers outside see nothing of it, and are not held up by it.
      expect((await store.query('SELECT count(*) FROM runs')).rows).toEqual([[0]]);
      expect(await store.tableCounts()).toMatchObject({ runs: 0, activations: 0 });
      release();
      const run = await unit;
      expect(await store.tableCounts()).toMatchObject({ runs: 1, activations: 1 });
      expect((await store.getRun(run))?.prompt).toBe('a');

      await expect(store.atomic(async () => {
        const r = await store.addRun({ modelId: 'm', prompt: 'b', tokenIds: [2], tokens: ['b'] });
        await store.addActivations([{ runId: r, hook: 'blocks.0.hook_resid_post', position: 0, vec: [3] }]);
        await store.addExperiment({ kind: 'ablation', modelId: 'm' }, [{ site: 'L0.H0', value: 1 }]);
        throw new Error('the tool failed after writing');
      })).rejects.toThrow('the tool failed after writing');
      expect(await store.tableCounts()).toMatchObject({ runs: 1, activations: 1, experiments: 0, results: 0 });
    } finally {
      await store.close();
    }
  });

  it('a process killed mid-unit leaves none of the unit behind', async () => {
    const dataDir = join(root, 'atomic-kill');
    await runUntilThenKill('unit-kill', `
      import { ActivationStore } from ${JSON.stringify(STORE_TS)};
      const s = await ActivationStore.open({ dataDir: ${JSON.stringify(dataDir)} });
      await s.addModel({ modelId: 'm', name: 'm' });
      await s.atomic(async () => {
        const rows = [];
        for (let i = 0; i < 5; i++) {
          const run = await s.addRun({ modelId: 'm', prompt: 'p' + i, tokenIds: [i], tokens: ['t'] });
          rows.push({ runId: run, hook: 'blocks.0.hook_resid_post', position: 0, vec: [i, 1] });
        }
        await s.addActivations(rows.slice(0, 2));
        await s.addExperiment({ kind: 'capture', modelId: 'm' });
        console.log('half-written');
        await new Promise(() => {}); // killed here, before the rest of the activations
      });
    `, 'half-written');
    const store = await ActivationStore.open({ dataDir, ...quiet });
    try {
      expect(await store.tableCounts()).toMatchObject({ models: 1, runs: 0, activations: 0, experiments: 0 });
    } finally {
      await store.close();
    }
  }, 60_000);
});
