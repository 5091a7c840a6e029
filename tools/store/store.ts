// The DuckDB activation store: one file under the data dir holding runs, activations, experiment
// results, named vectors and findings.
//
// Concurrency: DuckDB allows one read-write process per file, and two instances on the same file in
// one process would corrupt it. So: open ONE ActivationStore per file per process (open() refuses a
// second) and share it; a second process gets a clear "locked" error. Within the store, writes run
// one at a time on a single writer connection (a promise queue), so concurrent async callers never
// interleave transactions; SQL-tool queries each get their own short-lived connection and see the
// last committed state.
//
// Sandbox: right after opening, the instance is set to enable_external_access=false with only
// <dataDir>/exports allowed, and the configuration is locked. The store itself needs no other file
// access, and the SQL tool then cannot read files, URLs or extensions even if a check is missed.
import { HookError, parseHookName } from '../../engine/hook-address.ts';
import { AsyncLocalStorage } from 'node:async_hooks';
import { existsSync, mkdirSync, realpathSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import {
  DuckDBInstance,
  DOUBLE,
  DuckDBListVector,
  FLOAT,
  INTEGER,
  LIST,
  VARCHAR,
  listValue,
  type DuckDBConnection,
  type DuckDBType,
  type DuckDBValue,
} from '@duckdb/node-api';
import { appendRows } from './bulk.ts';
import { newId } from './ids.ts';
import { SCHEMA_VERSION, createStoreFile, migrate, pidAlive } from './migrations.ts';
import { lockHolder, openInstanceRecovering, type StoreEvent } from './recovery.ts';
import { runReadOnlyQuery } from './readonly-sql.ts';
import { dataDirOrDefault } from '../defaults.ts';
import {
  TABLES,
  TABLE_NAMES,
  describeSchema,
  isTableName,
  sqlString,
  type TableDoc,
  type TableName,
} from './schema.ts';
import type {
  ActivationFilter,
  ActivationInput,
  ActivationRecord,
  ExperimentInput,
  ExperimentRecord,
  FindingInput,
  FindingRecord,
  Json,
  ModelInput,
  ModelRecord,
  QueryOptions,
  QueryResult,
  ResultInput,
  ResultRecord,
  RunInput,
  RunRecord,
  SaeInput,
  SaeLatentInput,
  SaeRecord,
  VectorInput,
  VectorRecord,
} from './types.ts';
import { floatList, jsonParam, l2norm, readFloatList, readerObjects, toFloat32 } from './values.ts';

export class StoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StoreError';
  }
}

export interface StoreOptions {
  /** Data directory (default ".neuroscope", resolved against the cwd). Created if missing. */
  dataDir?: string;
  /** Database file (default <dataDir>/neuroscope.duckdb). */
  file?: string;
  /** DuckDB memory_limit of the instance (default "1GB"): bounds what any query, the SQL tool's
   *  included, may hold in DuckDB's buffers. */
  memoryLimit?: string;
  /** DuckDB worker threads (default min(4, cores)). */
  threads?: number;
  /** Where recovery events are reported besides store_events (default stderr). */
  log?: (message: string) => void;
}

const DEFAULT_ACTIVATION_LIMIT = 100_000;
const DEFAULT_MEMORY_LIMIT = '1GB';
const INT32_MAX = 2 ** 31 - 1;

/** Files held open by this process: a second instance on the same file would corrupt it. */
const openFiles = new Set<string>();

/** The block of a hook name (null for global hooks and names that are not hooks). */
export function layerFromHook(hook: string): number | null {
  try {
    const a = parseHookName(hook);
    return a.kind === 'global' ? null : a.layer;
  } catch (e) {
    if (e instanceof HookError) return null;
    throw e;
  }
}

function checkInt(v: unknown, what: string, nullable: boolean): number | null {
  if (v === undefined || v === null) {
    if (nullable) return null;
    throw new TypeError(`${what} is required`);
  }
  if (typeof v !== 'number' || !Number.isInteger(v) || Math.abs(v) > INT32_MAX) throw new TypeError(`${what} must be a 32-bit integer, got ${String(v)}`);
  return v;
}

function checkString(v: unknown, what: string, nullable = false): string | null {
  if (v === undefined || v === null) {
    if (nullable) return null;
    throw new TypeError(`${what} is required`);
  }
  if (typeof v !== 'string' || (!nullable && v.length === 0)) throw new TypeError(`${what} must be a non-empty string`);
  return v;
}

function checkNumber(v: unknown, what: string): number | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'number') throw new TypeError(`${what} must be a number or null`);
  return v;
}

function asStringArray(v: Json): string[] {
  return Array.isArray(v) ? v.map((x) => String(x)) : [];
}

function asNumberArray(v: Json): number[] {
  return Array.isArray(v) ? v.map((x) => Number(x)) : [];
}

function asFloat32(v: Json): Float32Array {
  return Float32Array.from(asNumberArray(v));
}

const str = (v: Json) => (v === null ? null : String(v));
const num = (v: Json) => (v === null ? null : Number(v));

function normalisedEffect(value: number | null, clean: number | null, corrupted: number | null): number | null {
  if (value === null || clean === null || corrupted === null || clean === corrupted) return null;
  return (value - corrupted) / (clean - corrupted);
}

/** One atomic() unit (one tool call): its writes queue here while it holds the writer. */
interface Unit {
  queue: Promise<unknown>;
}

/** The error for a store that could not be opened, naming the other process when it is a lock. */
function openError(file: string, dataDir: string, e: unknown): StoreError {
  const msg = (e as Error).message ?? String(e);
  const lock = lockHolder(msg);
  if (!lock.locked) return new StoreError(`Could not open the activation store ${file}: ${msg}`);
  const who = lock.pid === null ? 'another process' : `process ${lock.pid}${pidAlive(lock.pid) ? '' : ' (which may just have exited; try again)'}`;
  return new StoreError(
    `The data directory ${dataDir} is in use by ${who}: its activation store ${file} takes one process at a time (DuckDB allows one writer per file). ` +
      'Close that process (a chat, an MCP server or a suite run), or give this one its own data directory with --data DIR or NEUROSCOPE_DATA=DIR.',
  );
}

export class ActivationStore {
  private queue: Promise<unknown> = Promise.resolve();
  private readQueue: Promise<unknown> = Promise.resolve();
  private closed = false;
  private readonly activeQueries = new Set<Promise<unknown>>();
  private readonly units = new AsyncLocalStorage<Unit>();
  /** The unit whose transaction is open on the writer, if any. */
  private active: Unit | null = null;

  private constructor(
    private readonly instance: DuckDBInstance,
    private readonly conn: DuckDBConnection,
    private readonly reader: DuckDBConnection,
    /** Absolute data directory. */
    readonly dataDir: string,
    /** Absolute database file path. */
    readonly file: string,
    /** Absolute directory Parquet exports are confined to. */
    readonly exportsDir: string,
  ) {}

  /**
   * Opens (creating if needed) the store file. One store per file per process. Crash-safe at every
   * instant: a new file appears only complete, a current file gets no DDL, and a write-ahead log
   * DuckDB cannot replay is set aside (recorded in store_events, see events()).
   */
  static async open(opts: StoreOptions = {}): Promise<ActivationStore> {
    const dataDir = dataDirOrDefault(opts.dataDir);
    mkdirSync(path.join(dataDir, 'exports'), { recursive: true });
    const exportsDir = realpathSync(path.join(dataDir, 'exports'));
    const given = path.resolve(opts.file ?? path.join(dataDir, 'neuroscope.duckdb'));
    mkdirSync(path.dirname(given), { recursive: true });
    // Real path, so two spellings of one file (symlinks, ..) are recognised as the same store.
    const file = path.join(realpathSync(path.dirname(given)), path.basename(given));
    if (openFiles.has(file)) {
      throw new StoreError(`The activation store ${file} is already open in this process; share that ActivationStore instead of opening it twice.`);
    }
    openFiles.add(file); // reserved before the first await, so two concurrent open() calls cannot both pass
    const log = opts.log ?? ((m: string) => process.stderr.write(`[neuroscope store] ${m}\n`));
    // No extension auto-install/auto-load: nothing is fetched from the network, ever.
    const config = { autoinstall_known_extensions: 'false', autoload_known_extensions: 'false' };
    let instance: DuckDBInstance;
    const events: StoreEvent[] = [];
    try {
      if (!existsSync(file)) {
        await createStoreFile(file, config);
        events.push({ at: new Date().toISOString(), kind: 'created', detail: `new store, schema version ${SCHEMA_VERSION}` });
      }
      const opened = await openInstanceRecovering(file, config, log);
      instance = opened.instance;
      events.push(...opened.events);
    } catch (e) {
      openFiles.delete(file);
      throw openError(file, dataDir, e);
    }
    let conn: DuckDBConnection | undefined;
    let reader: DuckDBConnection | undefined;
    try {
      conn = await instance.connect();
      const applied = await migrate(conn, file);
      if (applied.length) events.push({ at: new Date().toISOString(), kind: 'migrated', detail: `applied schema version(s) ${applied.join(', ')}` });
      await conn.run(`SET memory_limit = ${sqlString(opts.memoryLimit ?? DEFAULT_MEMORY_LIMIT)}`);
      await conn.run(`SET threads = ${Math.max(1, Math.floor(opts.threads ?? Math.min(4, availableParallelism())))}`);
      await conn.run(`SET allowed_directories = [${sqlString(exportsDir + path.sep)}]`);
      await conn.run('SET enable_external_access = false');
      await conn.run('SET lock_configuration = true');
      reader = await instance.connect();
      const store = new ActivationStore(instance, conn, reader, dataDir, file, exportsDir);
      await store.checkColumns();
      for (const ev of events) await store.recordEvent(ev);
      return store;
    } catch (e) {
      reader?.closeSync();
      conn?.closeSync();
      instance.closeSync();
      openFiles.delete(file);
      throw e;
    }
  }

  // ---- internals -------------------------------------------------------------------------

  /**
   * Runs `fn` on the writer connection after every earlier operation there has finished. Inside
   * the active atomic() unit, operations queue within the unit (whose transaction holds the writer).
   */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new StoreError('The activation store is closed.'));
    const unit = this.units.getStore();
    if (unit && unit === this.active) {
      const run = unit.queue.then(fn, fn);
      unit.queue = run.catch(() => undefined);
      return run;
    }
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Reads: inside the active unit on the writer (to see the unit's own rows), else on the reader
   *  connection, so readers never wait for a unit's long transaction. */
  private read<T>(fn: (conn: DuckDBConnection) => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new StoreError('The activation store is closed.'));
    const unit = this.units.getStore();
    if (unit && unit === this.active) return this.exclusive(() => fn(this.conn));
    const run = this.readQueue.then(() => fn(this.reader), () => fn(this.reader));
    this.readQueue = run.catch(() => undefined);
    return run;
  }

  /** Runs `fn` in one transaction: everything it wrote is rolled back if it throws. Inside an
   *  atomic() unit it joins the unit's transaction (which rolls back as a whole). */
  private tx<T>(fn: () => Promise<T>): Promise<T> {
    const unit = this.units.getStore();
    if (unit && unit === this.active) return this.exclusive(fn);
    return this.exclusive(async () => {
      await this.conn.run('BEGIN TRANSACTION');
      try {
        const result = await fn();
        await this.conn.run('COMMIT');
        return result;
      } catch (e) {
        await this.rollback();
        throw e;
      }
    });
  }

  private async rollback(): Promise<void> {
    try {
      await this.conn.run('ROLLBACK');
    } catch {
      /* already rolled back by DuckDB */
    }
  }

  /**
   * Runs `fn` (one tool call) as one unit: every store write it makes, runs, activations,
   * experiments, results, vectors, findings, commits together when it returns, or not at all when
   * it throws or the process dies first. Until then no other connection (the SQL tool, a resource
   * read) sees any of it. Writes from outside the unit wait for it; reads do not. Nested calls join
   * the outer unit.
   */
  async atomic<T>(fn: () => Promise<T>): Promise<T> {
    const outer = this.units.getStore();
    if (outer && outer === this.active) return fn();
    return this.exclusive(async () => {
      const unit: Unit = { queue: Promise.resolve() };
      await this.conn.run('BEGIN TRANSACTION');
      this.active = unit;
      let result: T;
      try {
        result = await this.units.run(unit, fn);
        await unit.queue; // writes the call started but did not await
      } catch (e) {
        await unit.queue;
        this.active = null;
        await this.rollback();
        throw e;
      }
      this.active = null;
      try {
        await this.conn.run('COMMIT');
      } catch (e) {
        await this.rollback();
        throw new StoreError(`The writes of this call could not be committed, so none of them was stored: ${(e as Error).message}`);
      }
      return result;
    });
  }

  private async rows(sql: string, values: DuckDBValue[] = [], types?: DuckDBType[], conn: DuckDBConnection = this.conn): Promise<Record<string, Json>[]> {
    return readerObjects(await conn.runAndReadAll(sql, values, types));
  }

  /** A file made by a different schema would fail later in confusing ways: say so now. */
  private async checkColumns(): Promise<void> {
    const actual = await this.rows(
      `SELECT table_name, column_name, data_type FROM duckdb_columns()
       WHERE database_name = current_database() AND schema_name = 'main' ORDER BY table_name, column_index`,
    );
    for (const t of TABLES) {
      const have = actual.filter((r) => r.table_name === t.name).map((r) => `${String(r.column_name)} ${String(r.data_type)}`);
      const want = t.columns.map((c) => `${c.name} ${c.type}`);
      if (have.join(', ') !== want.join(', ')) {
        throw new StoreError(
          `The store file ${this.file} has table ${t.name}(${have.join(', ')}) but this NeuroScope expects ${t.name}(${want.join(', ')}). ` +
            'It was written by a different version: move it aside (or export it) and reopen.',
        );
      }
    }
  }

  private async recordEvent(ev: StoreEvent): Promise<void> {
    await this.exclusive(() =>
      this.conn.run('INSERT INTO store_events VALUES (?::TIMESTAMPTZ, ?, ?)', [ev.at, ev.kind, ev.detail], [VARCHAR, VARCHAR, VARCHAR]),
    );
  }

  /** What happened to the file itself (created, migrated, a write-ahead log set aside), newest first. */
  async events(limit = 20): Promise<StoreEvent[]> {
    const rows = await this.read((c) => this.rows(`SELECT happened_at, kind, detail FROM store_events ORDER BY happened_at DESC LIMIT ${checkInt(limit, 'limit', false)}`, [], undefined, c));
    return rows.map((r) => ({ at: String(r.happened_at), kind: r.kind as StoreEvent['kind'], detail: String(r.detail) }));
  }

  private async requireIds(table: 'models' | 'runs' | 'experiments', column: string, ids: Iterable<string>, hint: string): Promise<void> {
    const wanted = [...new Set(ids)];
    if (wanted.length === 0) return;
    const found = await this.rows(`SELECT ${column} AS id FROM ${table} WHERE list_contains(?, ${column})`, [listValue(wanted)], [LIST(VARCHAR)]);
    const have = new Set(found.map((r) => String(r.id)));
    const missing = wanted.filter((id) => !have.has(id));
    if (missing.length > 0) throw new StoreError(`Unknown ${column} ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', ...' : ''}: ${hint}`);
  }

  // ---- models and runs --------------------------------------------------------------------

  /** Registers a model (or updates name/path/config of an existing model_id). Returns model_id. */
  async addModel(m: ModelInput): Promise<string> {
    const modelId = m.modelId ?? newId('mdl');
    checkString(modelId, 'modelId');
    checkString(m.name, 'name');
    checkString(m.path, 'path', true);
    const config = jsonParam(m.config, 'config');
    await this.exclusive(() =>
      this.conn.run(
        `INSERT INTO models (model_id, name, path, config) VALUES (?, ?, ?, ?::JSON)
         ON CONFLICT (model_id) DO UPDATE SET name = excluded.name, path = excluded.path, config = excluded.config`,
        [modelId, m.name, m.path ?? null, config],
        [VARCHAR, VARCHAR, VARCHAR, VARCHAR],
      ),
    );
    return modelId;
  }

  async getModel(modelId: string): Promise<ModelRecord | null> {
    const [r] = await this.read((c) => this.rows('SELECT * FROM models WHERE model_id = ?', [modelId], undefined, c));
    return r ? { modelId: String(r.model_id), name: String(r.name), path: str(r.path), config: r.config, createdAt: String(r.created_at) } : null;
  }

  /** Records a run (the model must be registered). Returns run_id. */
  async addRun(r: RunInput): Promise<string> {
    const runId = r.runId ?? newId('run');
    checkString(runId, 'runId');
    checkString(r.modelId, 'modelId');
    if (typeof r.prompt !== 'string') throw new TypeError('prompt must be a string');
    if (!Array.isArray(r.tokenIds) || !Array.isArray(r.tokens)) throw new TypeError('tokenIds and tokens must be arrays');
    if (r.tokenIds.length !== r.tokens.length) throw new RangeError(`tokenIds (${r.tokenIds.length}) and tokens (${r.tokens.length}) differ in length`);
    r.tokenIds.forEach((t, i) => checkInt(t, `tokenIds[${i}]`, false));
    r.tokens.forEach((t, i) => {
      if (typeof t !== 'string') throw new TypeError(`tokens[${i}] must be a string`);
    });
    const meta = jsonParam(r.meta, 'meta');
    await this.tx(async () => {
      await this.requireIds('models', 'model_id', [r.modelId], 'register the model with addModel() first.');
      await this.conn.run(
        'INSERT INTO runs (run_id, model_id, prompt, token_ids, tokens, meta) VALUES (?, ?, ?, ?, ?, ?::JSON)',
        [runId, r.modelId, r.prompt, listValue([...r.tokenIds]), listValue([...r.tokens]), meta],
        [VARCHAR, VARCHAR, VARCHAR, LIST(INTEGER), LIST(VARCHAR), VARCHAR],
      );
    });
    return runId;
  }

  async getRun(runId: string): Promise<RunRecord | null> {
    const [r] = await this.read((c) => this.rows('SELECT * FROM runs WHERE run_id = ?', [runId], undefined, c));
    if (!r) return null;
    return {
      runId: String(r.run_id),
      modelId: String(r.model_id),
      prompt: String(r.prompt),
      tokenIds: asNumberArray(r.token_ids),
      tokens: asStringArray(r.tokens),
      createdAt: String(r.created_at),
      meta: r.meta,
    };
  }

  // ---- activations ------------------------------------------------------------------------

  /**
   * Bulk-writes activation rows through the appender, all or nothing. Every run_id must exist.
   * layer defaults to the block index in the hook name; norm is computed here. Returns rows written.
   */
  async addActivations(rows: readonly ActivationInput[]): Promise<number> {
    if (!Array.isArray(rows)) throw new TypeError('addActivations expects an array of rows');
    // Validate everything before touching the database so bad input never reaches the appender.
    const vecs: Float32Array[] = new Array(rows.length);
    const norms = new Float64Array(rows.length);
    const layers: (number | null)[] = new Array(rows.length);
    const runIds = new Set<string>();
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i];
      const what = `activation row ${i}`;
      checkString(r.runId, `${what}: runId`);
      checkString(r.hook, `${what}: hook`);
      checkInt(r.position, `${what}: position`, false);
      checkInt(r.component, `${what}: component`, true);
      layers[i] = r.layer === undefined ? layerFromHook(r.hook) : checkInt(r.layer, `${what}: layer`, true);
      vecs[i] = toFloat32(r.vec, what);
      norms[i] = l2norm(vecs[i]);
      runIds.add(r.runId);
    }
    if (rows.length === 0) return 0;
    await this.tx(async () => {
      await this.requireIds('runs', 'run_id', runIds, 'record the run with addRun() before its activations.');
      await appendRows(this.conn, 'activations', rows.length, [
        (i) => rows[i].runId,
        (i) => rows[i].hook,
        (i) => layers[i],
        (i) => rows[i].position,
        (i) => rows[i].component ?? null,
        (i) => floatList(vecs[i]),
        (i) => norms[i],
      ]);
    });
    return rows.length;
  }

  /** Reads activations matching the filter, ordered by run, layer, hook, position, component. */
  async getActivations(filter: ActivationFilter = {}): Promise<ActivationRecord[]> {
    const where: string[] = [];
    const values: DuckDBValue[] = [];
    const types: DuckDBType[] = [];
    const inList = (column: string, v: unknown, type: DuckDBType, isInt: boolean) => {
      if (v === undefined) return;
      const list = (Array.isArray(v) ? v : [v]) as (string | number)[];
      list.forEach((x, i) => (isInt ? checkInt(x, `${column}[${i}]`, false) : checkString(x, `${column}[${i}]`)));
      where.push(`list_contains(?, ${column})`);
      values.push(listValue(list));
      types.push(LIST(type));
    };
    inList('run_id', filter.runId, VARCHAR, false);
    inList('hook', filter.hook, VARCHAR, false);
    inList('layer', filter.layer, INTEGER, true);
    inList('position', filter.position, INTEGER, true);
    if (filter.component === null) where.push('component IS NULL');
    else inList('component', filter.component, INTEGER, true);
    const limit = checkInt(filter.limit ?? DEFAULT_ACTIVATION_LIMIT, 'limit', false)!;
    const sql =
      'SELECT run_id, hook, layer, position, component, vec, norm FROM activations' +
      (where.length ? ` WHERE ${where.join(' AND ')}` : '') +
      ` ORDER BY run_id, layer NULLS FIRST, hook, position, component NULLS FIRST LIMIT ${limit}`;
    return this.read(async (c) => {
      const result = await c.stream(sql, values, types);
      const out: ActivationRecord[] = [];
      for (let chunk = await result.fetchChunk(); chunk && chunk.rowCount > 0; chunk = await result.fetchChunk()) {
        const [runId, hook, layer, position, component, vec, norm] = Array.from({ length: 7 }, (_, c) => chunk.getColumnVector(c));
        for (let r = 0; r < chunk.rowCount; r++) {
          out.push({
            runId: runId.getItem(r) as string,
            hook: hook.getItem(r) as string,
            layer: layer.getItem(r) as number | null,
            position: position.getItem(r) as number,
            component: component.getItem(r) as number | null,
            vec: readFloatList(vec as DuckDBListVector, r),
            norm: norm.getItem(r) as number,
          });
        }
      }
      return out;
    });
  }

  // ---- experiments and results ------------------------------------------------------------

  /**
   * Records an experiment and, optionally, its result rows in one transaction. Returns experiment_id.
   * Result rows without an effect get (value - corrupted) / (clean - corrupted) when both are known.
   */
  async addExperiment(e: ExperimentInput, results: readonly ResultInput[] = []): Promise<string> {
    const experimentId = e.experimentId ?? newId('exp');
    checkString(experimentId, 'experimentId');
    checkString(e.kind, 'kind');
    checkString(e.modelId, 'modelId', true);
    checkString(e.metric, 'metric', true);
    const clean = checkNumber(e.cleanValue, 'cleanValue');
    const corrupted = checkNumber(e.corruptedValue, 'corruptedValue');
    const params = jsonParam(e.params, 'params');
    const summary = jsonParam(e.summary, 'summary');
    const own = results.map((r) => ({ ...r, experimentId: r.experimentId ?? experimentId }));
    own.forEach((r, i) => {
      if (r.experimentId !== experimentId) throw new StoreError(`result row ${i} belongs to ${r.experimentId}, not ${experimentId}`);
    });
    await this.tx(async () => {
      if (e.modelId) await this.requireIds('models', 'model_id', [e.modelId], 'register the model with addModel() first.');
      await this.conn.run(
        `INSERT INTO experiments (experiment_id, kind, model_id, params, metric, clean_value, corrupted_value, summary)
         VALUES (?, ?, ?, ?::JSON, ?, ?, ?, ?::JSON)`,
        [experimentId, e.kind, e.modelId ?? null, params, e.metric ?? null, clean, corrupted, summary],
        [VARCHAR, VARCHAR, VARCHAR, VARCHAR, VARCHAR, DOUBLE, DOUBLE, VARCHAR],
      );
      await this.appendResults(own, new Map([[experimentId, { clean, corrupted }]]));
    });
    return experimentId;
  }

  /** Appends result rows to existing experiments, all or nothing. Returns rows written. */
  async addResults(rows: readonly ResultInput[]): Promise<number> {
    if (!Array.isArray(rows)) throw new TypeError('addResults expects an array of rows');
    rows.forEach((r, i) => checkString(r.experimentId, `result row ${i}: experimentId`));
    if (rows.length === 0) return 0;
    await this.tx(async () => {
      const ids = [...new Set(rows.map((r) => r.experimentId!))];
      await this.requireIds('experiments', 'experiment_id', ids, 'create the experiment with addExperiment() first.');
      const baselines = await this.rows(
        'SELECT experiment_id, clean_value, corrupted_value FROM experiments WHERE list_contains(?, experiment_id)',
        [listValue(ids)],
        [LIST(VARCHAR)],
      );
      const map = new Map(baselines.map((b) => [String(b.experiment_id), { clean: num(b.clean_value), corrupted: num(b.corrupted_value) }]));
      await this.appendResults(rows, map);
    });
    return rows.length;
  }

  private async appendResults(rows: readonly ResultInput[], baselines: Map<string, { clean: number | null; corrupted: number | null }>): Promise<void> {
    const effects: (number | null)[] = rows.map((r, i) => {
      const what = `result row ${i}`;
      checkString(r.site, `${what}: site`);
      checkString(r.hook, `${what}: hook`, true);
      for (const k of ['layer', 'position', 'component', 'neuron'] as const) checkInt(r[k], `${what}: ${k}`, true);
      const value = checkNumber(r.value, `${what}: value`);
      if (r.effect !== undefined) return checkNumber(r.effect, `${what}: effect`);
      const b = baselines.get(r.experimentId!);
      return normalisedEffect(value, b?.clean ?? null, b?.corrupted ?? null);
    });
    // extra is serialised lazily per chunk; a non-serialisable value aborts the whole transaction.
    await appendRows(this.conn, 'results', rows.length, [
      (i) => rows[i].experimentId!,
      (i) => rows[i].site,
      (i) => rows[i].hook ?? null,
      (i) => rows[i].layer ?? null,
      (i) => rows[i].position ?? null,
      (i) => rows[i].component ?? null,
      (i) => rows[i].neuron ?? null,
      (i) => rows[i].value ?? null,
      (i) => effects[i],
      (i) => jsonParam(rows[i].extra, `result row ${i}: extra`),
    ]);
  }

  async getExperiment(experimentId: string): Promise<ExperimentRecord | null> {
    const [r] = await this.read((c) => this.rows('SELECT * FROM experiments WHERE experiment_id = ?', [experimentId], undefined, c));
    if (!r) return null;
    return {
      experimentId: String(r.experiment_id),
      kind: String(r.kind),
      modelId: str(r.model_id),
      params: r.params,
      metric: str(r.metric),
      cleanValue: num(r.clean_value),
      corruptedValue: num(r.corrupted_value),
      summary: r.summary,
      createdAt: String(r.created_at),
    };
  }

  /** Result rows of an experiment in insertion order. */
  async getResults(experimentId: string): Promise<ResultRecord[]> {
    const rows = await this.read((c) => this.rows('SELECT * FROM results WHERE experiment_id = ? ORDER BY rowid', [experimentId], undefined, c));
    return rows.map((r) => ({
      experimentId: String(r.experiment_id),
      site: String(r.site),
      hook: str(r.hook),
      layer: num(r.layer),
      position: num(r.position),
      component: num(r.component),
      neuron: num(r.neuron),
      value: num(r.value),
      effect: num(r.effect),
      extra: r.extra,
    }));
  }

  // ---- vectors and findings ---------------------------------------------------------------

  /** Creates or replaces the vector called `name`. */
  async putVector(v: VectorInput): Promise<void> {
    checkString(v.name, 'name');
    checkString(v.kind, 'kind');
    checkString(v.modelId, 'modelId', true);
    checkString(v.hook, 'hook', true);
    const layer = v.layer === undefined ? (v.hook ? layerFromHook(v.hook) : null) : checkInt(v.layer, 'layer', true);
    const vec = toFloat32(v.vec, `vector ${v.name}`);
    const meta = jsonParam(v.meta, 'meta');
    await this.tx(async () => {
      if (v.modelId) await this.requireIds('models', 'model_id', [v.modelId], 'register the model with addModel() first.');
      // Delete + insert rather than ON CONFLICT DO UPDATE: a plain replace, list column included.
      await this.conn.run('DELETE FROM vectors WHERE name = ?', [v.name]);
      await this.conn.run(
        'INSERT INTO vectors (name, kind, model_id, hook, layer, vec, meta) VALUES (?, ?, ?, ?, ?, ?, ?::JSON)',
        [v.name, v.kind, v.modelId ?? null, v.hook ?? null, layer, listValue(Array.from(vec)), meta],
        [VARCHAR, VARCHAR, VARCHAR, VARCHAR, INTEGER, LIST(FLOAT), VARCHAR],
      );
    });
  }

  async getVector(name: string): Promise<VectorRecord | null> {
    const [r] = await this.read((c) => this.rows('SELECT * FROM vectors WHERE name = ?', [name], undefined, c));
    if (!r) return null;
    return {
      name: String(r.name),
      kind: String(r.kind),
      modelId: str(r.model_id),
      hook: str(r.hook),
      layer: num(r.layer),
      vec: asFloat32(r.vec),
      meta: r.meta,
      createdAt: String(r.created_at),
    };
  }

  /** Vector names and shapes (without the vectors), optionally of one kind. */
  async listVectors(kind?: string): Promise<{ name: string; kind: string; modelId: string | null; hook: string | null; layer: number | null; dim: number }[]> {
    const rows = await this.read((c) =>
      this.rows(
        `SELECT name, kind, model_id, hook, layer, len(vec) AS dim FROM vectors ${kind === undefined ? '' : 'WHERE kind = ?'} ORDER BY name`,
        kind === undefined ? [] : [kind],
        undefined,
        c,
      ),
    );
    return rows.map((r) => ({ name: String(r.name), kind: String(r.kind), modelId: str(r.model_id), hook: str(r.hook), layer: num(r.layer), dim: Number(r.dim) }));
  }

  /** Records a finding. Returns finding_id. */
  async addFinding(f: FindingInput): Promise<string> {
    const findingId = f.findingId ?? newId('fnd');
    checkString(findingId, 'findingId');
    checkString(f.title, 'title');
    checkString(f.path, 'path', true);
    if (typeof f.body !== 'string') throw new TypeError('body must be a string');
    const experimentIds = [...(f.experimentIds ?? [])];
    const runIds = [...(f.runIds ?? [])];
    experimentIds.forEach((x, i) => checkString(x, `experimentIds[${i}]`));
    runIds.forEach((x, i) => checkString(x, `runIds[${i}]`));
    await this.exclusive(() =>
      this.conn.run(
        'INSERT INTO findings (finding_id, title, path, body, experiment_ids, run_ids) VALUES (?, ?, ?, ?, ?, ?)',
        [findingId, f.title, f.path ?? null, f.body, listValue(experimentIds), listValue(runIds)],
        [VARCHAR, VARCHAR, VARCHAR, VARCHAR, LIST(VARCHAR), LIST(VARCHAR)],
      ),
    );
    return findingId;
  }

  /** Findings, newest first. */
  async listFindings(opts: { limit?: number } = {}): Promise<FindingRecord[]> {
    const limit = checkInt(opts.limit ?? 1000, 'limit', false)!;
    const rows = await this.read((c) => this.rows(`SELECT * FROM findings ORDER BY created_at DESC, finding_id LIMIT ${limit}`, [], undefined, c));
    return rows.map((r) => ({
      findingId: String(r.finding_id),
      title: String(r.title),
      path: str(r.path),
      body: String(r.body),
      experimentIds: asStringArray(r.experiment_ids),
      runIds: asStringArray(r.run_ids),
      createdAt: String(r.created_at),
    }));
  }

  // ---- export, description, SQL -----------------------------------------------------------

  /**
   * Writes a table to a Parquet file inside <dataDir>/exports. `target` is relative to that
   * directory (an absolute path must already lie inside it) and must end in .parquet.
   */
  async exportParquet(table: string, target: string): Promise<{ path: string; rows: number }> {
    if (!isTableName(table)) throw new StoreError(`Unknown table "${table}". Tables: ${TABLE_NAMES.join(', ')}.`);
    if (typeof target !== 'string' || target.length === 0) throw new StoreError('Export path is required.');
    const resolved = path.resolve(this.exportsDir, target);
    const inside = (p: string) => {
      const rel = path.relative(this.exportsDir, p);
      return rel.length > 0 && !rel.startsWith('..') && !path.isAbsolute(rel);
    };
    if (!inside(resolved)) throw new StoreError(`Export path "${target}" escapes the exports directory ${this.exportsDir}; give a path inside it, e.g. "runs.parquet".`);
    if (!resolved.endsWith('.parquet')) throw new StoreError(`Export path "${target}" must end in .parquet.`);
    mkdirSync(path.dirname(resolved), { recursive: true });
    // A symlinked subdirectory could still point outside: check where the parent really is.
    const real = path.join(realpathSync(path.dirname(resolved)), path.basename(resolved));
    if (!inside(real)) throw new StoreError(`Export path "${target}" resolves to ${real}, outside the exports directory ${this.exportsDir}.`);
    const rows = await this.exclusive(async () => {
      const r = await this.conn.run(`COPY (SELECT * FROM ${table}) TO ${sqlString(real)} (FORMAT parquet)`);
      return r.rowsChanged;
    });
    return { path: real, rows };
  }

  /** The schema with a description of every table and column. */
  describe(): TableDoc[] {
    return describeSchema();
  }

  // ---- sparse dictionaries ----------------------------------------------------------------

  /** Records a dictionary (or replaces the row of an existing sae_id). Returns sae_id. */
  async addSae(r: SaeInput): Promise<string> {
    const saeId = r.saeId ?? newId('sae');
    checkString(saeId, 'saeId');
    checkString(r.hook, 'hook');
    checkString(r.hookOut, 'hookOut', true);
    checkString(r.architecture, 'architecture');
    checkString(r.path, 'path');
    for (const [k, v] of [['dIn', r.dIn], ['dSae', r.dSae]] as const) checkInt(v, k, false);
    checkInt(r.k, 'k', true);
    const metrics = jsonParam(r.metrics, 'metrics');
    await this.tx(async () => {
      if (r.modelId) await this.requireIds('models', 'model_id', [r.modelId], 'register the model with addModel() first.');
      await this.conn.run('DELETE FROM saes WHERE sae_id = ?', [saeId], [VARCHAR]);
      await this.conn.run(
        `INSERT INTO saes (sae_id, model_id, hook, hook_out, architecture, d_in, d_sae, k, path, metrics) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?::JSON)`,
        [saeId, r.modelId ?? null, r.hook, r.hookOut ?? null, r.architecture, r.dIn, r.dSae, r.k ?? null, r.path, metrics],
        [VARCHAR, VARCHAR, VARCHAR, VARCHAR, VARCHAR, INTEGER, INTEGER, INTEGER, VARCHAR, VARCHAR],
      );
    });
    return saeId;
  }

  /** Dictionaries, newest first; one when saeId is given. */
  async listSaes(saeId?: string): Promise<SaeRecord[]> {
    const rows = await this.exclusive(() =>
      this.rows(`SELECT * FROM saes ${saeId === undefined ? '' : 'WHERE sae_id = ?'} ORDER BY created_at DESC, sae_id`, saeId === undefined ? [] : [saeId]),
    );
    return rows.map((r) => ({
      saeId: String(r.sae_id), modelId: str(r.model_id), hook: String(r.hook), hookOut: str(r.hook_out), architecture: String(r.architecture),
      dIn: Number(r.d_in), dSae: Number(r.d_sae), k: num(r.k), path: String(r.path), metrics: r.metrics, createdAt: String(r.created_at),
    }));
  }

  /** Bulk-writes active latents (one row each), all or nothing; runs and the dictionary must exist. */
  async addSaeLatents(rows: readonly SaeLatentInput[]): Promise<number> {
    rows.forEach((r, i) => {
      checkString(r.runId, `latent row ${i}: runId`);
      checkString(r.saeId, `latent row ${i}: saeId`);
      checkInt(r.position, `latent row ${i}: position`, false);
      checkInt(r.latent, `latent row ${i}: latent`, false);
      if (typeof r.value !== 'number' || !Number.isFinite(r.value)) throw new TypeError(`latent row ${i}: value must be a finite number`);
    });
    if (rows.length === 0) return 0;
    await this.tx(async () => {
      await this.requireIds('runs', 'run_id', rows.map((r) => r.runId), 'record the run with addRun() before its latents.');
      const saes = [...new Set(rows.map((r) => r.saeId))];
      const found = await this.rows('SELECT sae_id FROM saes WHERE list_contains(?, sae_id)', [listValue(saes)], [LIST(VARCHAR)]);
      const missing = saes.filter((s) => !found.some((f) => f.sae_id === s));
      if (missing.length) throw new StoreError(`Unknown sae_id ${missing.join(', ')}: record the dictionary with addSae() before its latents.`);
      await appendRows(this.conn, 'sae_latents', rows.length, [
        (i) => rows[i].runId, (i) => rows[i].saeId, (i) => rows[i].position, (i) => rows[i].latent, (i) => rows[i].value,
      ]);
    });
    return rows.length;
  }

  /** Row count of every table. */
  async tableCounts(): Promise<Record<TableName, number>> {
    const sql = TABLE_NAMES.map((t) => `SELECT ${sqlString(t)} AS t, count(*) AS n FROM ${t}`).join(' UNION ALL ');
    const rows = await this.read((c) => this.rows(sql, [], undefined, c));
    const out = {} as Record<TableName, number>;
    for (const r of rows) out[r.t as TableName] = Number(r.n);
    return out;
  }

  /**
   * Runs one read-only statement (SELECT/WITH/FROM/VALUES/DESCRIBE/SHOW/SUMMARIZE/EXPLAIN) with at
   * most maxRows rows returned and a timeout. Throws SqlToolError ('refused' | 'timeout' | 'invalid').
   */
  async query(sql: string, opts: QueryOptions = {}): Promise<QueryResult> {
    if (this.closed) throw new StoreError('The activation store is closed.');
    const p = runReadOnlyQuery(this.instance, sql, opts);
    this.activeQueries.add(p);
    try {
      return await p;
    } finally {
      this.activeQueries.delete(p);
    }
  }

  /** Waits for pending work, checkpoints (folding the WAL into the file) and closes. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    const pending = this.exclusive(() => this.conn.run('CHECKPOINT'));
    this.closed = true;
    try {
      await pending;
    } finally {
      await Promise.allSettled([...this.activeQueries, this.readQueue]);
      this.reader.closeSync();
      this.conn.closeSync();
      this.instance.closeSync();
      openFiles.delete(this.file);
    }
  }
}
