// Opening the DuckDB instance of a store file, recovering from what a crash can leave behind.
//
// A write-ahead log DuckDB cannot replay makes every open fail ("Failure while replaying WAL
// file"). The main file is intact up to its last checkpoint, so the log is moved aside (kept, never
// deleted, named with the time) and the file is opened without it; the event is returned so the
// store can record it in store_events and describe_store can report it.
import { existsSync, renameSync } from 'node:fs';
import { DuckDBInstance } from '@duckdb/node-api';

export interface StoreEvent {
  at: string;
  kind: 'wal_set_aside' | 'created' | 'migrated';
  detail: string;
}

/** DuckDB's message when another process holds the file, with the holder's pid when it names one. */
export function lockHolder(message: string): { locked: boolean; pid: number | null } {
  if (!/lock/i.test(message)) return { locked: false, pid: null };
  const m = /PID (\d+)/i.exec(message);
  return { locked: true, pid: m ? Number(m[1]) : null };
}

export const isWalReplayFailure = (message: string) => /replaying WAL/i.test(message);

export async function openInstanceRecovering(
  file: string,
  config: Record<string, string>,
  log: (m: string) => void,
): Promise<{ instance: DuckDBInstance; events: StoreEvent[] }> {
  try {
    return { instance: await DuckDBInstance.create(file, config), events: [] };
  } catch (e) {
    const msg = (e as Error).message;
    const wal = `${file}.wal`;
    if (!isWalReplayFailure(msg) || !existsSync(wal)) throw e;
    const at = new Date().toISOString();
    const aside = `${wal}.unreplayable-${at.replace(/[:.]/g, '-')}`;
    renameSync(wal, aside);
    const detail =
      `DuckDB could not replay the write-ahead log (${msg.split('\n')[0].slice(0, 300)}); it was moved to ${aside} and the store opened ` +
      'from its last checkpoint. Transactions committed after that checkpoint are in the moved log, not in the store.';
    log(detail);
    return { instance: await DuckDBInstance.create(file, config), events: [{ at, kind: 'wal_set_aside', detail }] };
  }
}
