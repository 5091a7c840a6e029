// Schema versions of the store file, applied once each and recorded in schema_migrations.
//
// Why this shape: DuckDB 1.5 cannot replay COMMENT ON from its write-ahead log ("Failure while
// replaying WAL file ... GetDefaultDatabase"), so a process killed between a COMMENT ON and the next
// checkpoint leaves a file that never opens again. Therefore:
//   - a new store is built in a side file (<file>.creating-<pid>), checkpointed, closed, and only then
//     linked into place: the real path either does not exist or holds a complete, WAL-free schema;
//   - a store whose recorded version is current gets no DDL at all on open (opening is read-only
//     as far as the schema goes, so a kill at any instant of start-up cannot hurt it);
//   - a later migration runs in one transaction together with its schema_migrations row and is
//     checkpointed at once. Migrations after version 1 must not use COMMENT ON on existing tables.
import { existsSync, linkSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { TABLES, commentSql, createTableSql, sqlString } from './schema.ts';

export interface Migration {
  version: number;
  description: string;
  /** Tables (from TABLES) this version creates. */
  tables: readonly string[];
}

/** Bookkeeping tables: plain CREATE TABLE (no defaults, no comments) so their WAL records replay. */
export const BOOKKEEPING_SQL = [
  'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, description VARCHAR NOT NULL, applied_at TIMESTAMP WITH TIME ZONE NOT NULL)',
  'CREATE TABLE IF NOT EXISTS store_events (happened_at TIMESTAMP WITH TIME ZONE NOT NULL, kind VARCHAR NOT NULL, detail VARCHAR NOT NULL)',
];

export const MIGRATIONS: readonly Migration[] = [
  { version: 1, description: 'tables models, runs, activations, experiments, results, vectors, findings', tables: ['models', 'runs', 'activations', 'experiments', 'results', 'vectors', 'findings'] },
  { version: 2, description: 'tables saes, sae_latents (sparse dictionaries and their latents)', tables: ['saes', 'sae_latents'] },
];

/**
 * A migration's statements. Column comments (COMMENT ON) only in a fresh side file, which is
 * checkpointed before it becomes the store: on an existing store they could reach the WAL, which
 * DuckDB 1.5 cannot replay. describe() documents every column either way.
 */
function statements(m: Migration, fresh: boolean): string[] {
  return TABLES.filter((t) => m.tables.includes(t.name)).flatMap((t) => [createTableSql(t), ...(fresh ? commentSql(t) : [])]);
}

export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1].version;

const isoNow = () => new Date().toISOString();

async function tableNames(conn: DuckDBConnection): Promise<Set<string>> {
  const r = await conn.runAndReadAll(`SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = 'main'`);
  return new Set(r.getRows().map((row) => String(row[0])));
}

/** Applies migrations after `from`, each in one transaction with its record, checkpointed at once. */
async function applyFrom(conn: DuckDBConnection, from: number, fresh: boolean): Promise<number[]> {
  const applied: number[] = [];
  for (const m of MIGRATIONS) {
    if (m.version <= from) continue;
    await conn.run('BEGIN TRANSACTION');
    try {
      for (const sql of [...BOOKKEEPING_SQL, ...statements(m, fresh)]) await conn.run(sql);
      await conn.run(`INSERT INTO schema_migrations VALUES (${m.version}, ${sqlString(m.description)}, ${sqlString(isoNow())}::TIMESTAMPTZ)`);
      await conn.run('COMMIT');
    } catch (e) {
      await conn.run('ROLLBACK').catch(() => undefined);
      throw e;
    }
    await conn.run('CHECKPOINT');
    applied.push(m.version);
  }
  return applied;
}

/** The schema version recorded in the file; 0 for a file without schema_migrations. */
export async function recordedVersion(conn: DuckDBConnection): Promise<number> {
  if (!(await tableNames(conn)).has('schema_migrations')) return 0;
  const r = await conn.runAndReadAll('SELECT coalesce(max(version), 0) FROM schema_migrations');
  return Number(r.getRows()[0][0]);
}

/**
 * Brings an open store up to SCHEMA_VERSION. Returns the versions applied (empty for a current
 * store, which sees no DDL). Throws for a file from a newer NeuroScope.
 */
export async function migrate(conn: DuckDBConnection, file: string): Promise<number[]> {
  const version = await recordedVersion(conn);
  if (version === SCHEMA_VERSION) return [];
  if (version > SCHEMA_VERSION) {
    throw new Error(`The store file ${file} has schema version ${version}, newer than this NeuroScope's ${SCHEMA_VERSION}; update NeuroScope or use another --data directory.`);
  }
  if (version === 0) {
    const existing = await tableNames(conn);
    if (MIGRATIONS[0].tables.every((t) => existing.has(t))) return [...(await adoptLegacy(conn)), ...(await applyFrom(conn, 1, false))];
  }
  return applyFrom(conn, version, false);
}

/** A store written before schema_migrations existed (version 1 tables, comments already set). */
async function adoptLegacy(conn: DuckDBConnection): Promise<number[]> {
  await conn.run('BEGIN TRANSACTION');
  try {
    for (const sql of BOOKKEEPING_SQL) await conn.run(sql);
    await conn.run(`INSERT INTO schema_migrations VALUES (1, ${sqlString(`${MIGRATIONS[0].description} (adopted from a store made before schema versions)`)}, ${sqlString(isoNow())}::TIMESTAMPTZ)`);
    await conn.run('COMMIT');
  } catch (e) {
    await conn.run('ROLLBACK').catch(() => undefined);
    throw e;
  }
  await conn.run('CHECKPOINT');
  return [1];
}

/**
 * Creates a new store file at `file`, fully migrated and checkpointed, without ever exposing a
 * half-made one: built beside it, then hard-linked into place (which fails rather than replaces if
 * another process got there first). Side files of creators that were killed are removed first.
 */
export async function createStoreFile(file: string, config: Record<string, string>): Promise<void> {
  const dir = path.dirname(file);
  const prefix = `${path.basename(file)}.creating-`;
  for (const name of readdirSync(dir)) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(/^(\d+)/.exec(name.slice(prefix.length))?.[1]);
    if (!pidAlive(pid)) rmSync(path.join(dir, name), { force: true });
  }
  const side = path.join(dir, `${prefix}${process.pid}`);
  rmSync(side, { force: true });
  rmSync(`${side}.wal`, { force: true });
  const instance = await DuckDBInstance.create(side, config);
  try {
    const conn = await instance.connect();
    try {
      await applyFrom(conn, 0, true);
    } finally {
      conn.closeSync();
    }
  } finally {
    instance.closeSync();
  }
  try {
    if (!existsSync(file)) linkSync(side, file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  } finally {
    rmSync(side, { force: true });
    rmSync(`${side}.wal`, { force: true });
  }
}

/** Whether a process with this id exists (EPERM: it exists but belongs to someone else). */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
