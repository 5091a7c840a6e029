// Kills a real `neuroscope mcp` server (a child process, as a desktop client spawns it) at
// start-up, the moment a write-ahead log appears, or in the middle of a capture_activations call,
// then reopens its store and checks that every committed run is there, whole, and nothing else.
// Used by tests/mcp/kill.test.ts (a sample) and bench/kill-server.ts (many rounds, with figures).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync, watch } from 'node:fs';
import { join, resolve } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { ActivationStore } from '../../tools/store/index.ts';

const REPO = resolve(import.meta.dirname, '..', '..');
const BIN = join(REPO, 'bin', 'neuroscope.js');

export type KillSignal = 'SIGKILL' | 'SIGTERM';
export type KillPhase = 'startup' | 'capture';

export interface KillOutcome {
  signal: KillSignal;
  phase: KillPhase;
  /** Whether a .wal file existed in the data dir when the signal was sent. */
  walAtKill: boolean;
  /** How the server ended: "code 0", "signal SIGKILL"... */
  exit: string;
  /** Runs whose capture call returned before the kill (all must be in the store). */
  committed: number;
  /** Runs in the store after reopening. */
  runsInStore: number;
  /** Everything found wrong; empty when the round passed. */
  problems: string[];
}

/** Committed runs and their activation counts, accumulated over rounds on one data dir. */
export type Ledger = Map<string, number>;

const serverArgs = (modelDir: string, dataDir: string) => [BIN, 'mcp', '--model', modelDir, '--data', dataDir, '--threads', '1'];

const walFiles = (dir: string) => (existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.wal')) : []);

function exited(proc: ChildProcess, timeoutMs: number): Promise<string> {
  if (proc.exitCode !== null) return Promise.resolve(`code ${proc.exitCode}`);
  if (proc.signalCode !== null) return Promise.resolve(`signal ${proc.signalCode}`);
  return new Promise((res) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      res(`still running after ${timeoutMs} ms (killed)`);
    }, timeoutMs);
    proc.once('exit', (code, sig) => {
      clearTimeout(timer);
      res(sig ? `signal ${sig}` : `code ${code}`);
    });
  });
}

/** Start-up: spawn the server and signal it as soon as a .wal file appears (or, failing that, when the workspace is open). */
async function killAtStartup(modelDir: string, dataDir: string, signal: KillSignal): Promise<{ walAtKill: boolean; exit: string }> {
  mkdirSync(dataDir, { recursive: true });
  const proc = spawn(process.execPath, serverArgs(modelDir, dataDir), { cwd: REPO, stdio: ['pipe', 'ignore', 'pipe'] });
  let err = '';
  let fired = false;
  let walAtKill = false;
  const fire = () => {
    if (fired) return;
    fired = true;
    walAtKill = walFiles(dataDir).length > 0;
    proc.kill(signal);
  };
  const watcher = watch(dataDir, (_event, name) => {
    if (name?.endsWith('.wal')) fire();
  });
  proc.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
    if (/\] model \S+/.test(err)) fire(); // the workspace opened without a WAL being seen
  });
  const exit = await exited(proc, 60_000);
  watcher.close();
  if (!fired) throw new Error(`the server ended before it could be signalled (${exit}):\n${err}`);
  return { walAtKill, exit };
}

/** The typed result of a tool call (its structuredContent). */
function head(result: unknown): Record<string, unknown> {
  const sc = (result as { structuredContent?: Record<string, unknown> }).structuredContent;
  if (!sc) throw new Error(`tool result without structuredContent: ${JSON.stringify(result).slice(0, 300)}`);
  return sc;
}

/** Mid-capture: a client runs captures; after `before` of them returned, the next one is signalled `delayMs` after it starts. */
async function killMidCapture(
  modelDir: string,
  dataDir: string,
  signal: KillSignal,
  ledger: Ledger,
  before: number,
  delayMs: number,
  round: number,
): Promise<{ walAtKill: boolean; exit: string; committed: number }> {
  const transport = new StdioClientTransport({ command: process.execPath, args: serverArgs(modelDir, dataDir), cwd: REPO, stderr: 'pipe' });
  const client = new Client({ name: 'neuroscope-kill-test', version: '0' });
  await client.connect(transport);
  const pid = transport.pid!;
  const exit = new Promise<string>((res) => {
    // The transport owns the child; poll for its end through the pid.
    const t = setInterval(() => {
      try {
        process.kill(pid, 0);
      } catch {
        clearInterval(t);
        res('exited');
      }
    }, 20);
  });
  const prompts = (k: number) => Array.from({ length: 12 }, (_, i) => Array.from({ length: 8 }, (_, j) => `w${(round * 31 + k * 7 + i * 3 + j) % 60}`).join(' '));
  const capture = (k: number) =>
    client.callTool({ name: 'capture_activations', arguments: { prompts: prompts(k), hooks: ['blocks.*.hook_resid_post', 'blocks.*.attn.hook_z'] } });
  let committed = 0;
  const record = (r: unknown) => {
    const h = head(r);
    const runIds = h.runIds as string[];
    const perRun = Number(h.rowsStored) / runIds.length;
    for (const id of runIds) ledger.set(id, perRun);
    committed += runIds.length;
  };
  for (let k = 0; k < before; k++) {
    const r = await capture(k);
    if ((r as { isError?: boolean }).isError) throw new Error(`capture failed before the kill: ${JSON.stringify(r).slice(0, 400)}`);
    record(r);
  }
  const last = capture(before).then(
    (r) => ({ ok: !(r as { isError?: boolean }).isError, r }),
    () => ({ ok: false, r: null }),
  );
  await new Promise((r) => setTimeout(r, delayMs));
  const walAtKill = walFiles(dataDir).length > 0;
  process.kill(pid, signal);
  const settled = await last;
  // A call that answered successfully before the server went was committed: it must be there too.
  if (settled.ok) record(settled.r);
  const how = await Promise.race([exit, new Promise<string>((r) => setTimeout(() => r('timeout'), 30_000))]);
  if (how === 'timeout') process.kill(pid, 'SIGKILL');
  await client.close().catch(() => undefined);
  return { walAtKill, exit: how === 'timeout' ? 'still running after 30 s (killed)' : signal === 'SIGKILL' ? 'signal SIGKILL' : 'exited', committed };
}

/** Reopens the store and lists what is wrong: missing or partial committed runs, runs without activations, a set-aside WAL. */
export async function checkStore(dataDir: string, ledger: Ledger): Promise<{ problems: string[]; runsInStore: number }> {
  const problems: string[] = [];
  let store: ActivationStore;
  try {
    store = await ActivationStore.open({ dataDir, log: () => undefined });
  } catch (e) {
    return { problems: [`the store does not reopen: ${(e as Error).message}`], runsInStore: 0 };
  }
  try {
    const counts = await store.query('SELECT r.run_id, count(a.run_id) AS n FROM runs r LEFT JOIN activations a USING (run_id) GROUP BY r.run_id', { maxRows: 10_000 });
    const inStore = new Map(counts.rows.map((row) => [String(row[0]), Number(row[1])]));
    for (const [id, n] of ledger) {
      if (!inStore.has(id)) problems.push(`committed run ${id} is missing`);
      else if (inStore.get(id) !== n) problems.push(`committed run ${id} has ${inStore.get(id)} activation rows, not ${n}`);
    }
    for (const [id, n] of inStore) {
      if (n === 0) problems.push(`run ${id} has no activations (a half-written capture is visible)`);
      else if (!ledger.has(id)) ledger.set(id, n); // committed by the call that was being killed: now part of the record
    }
    const aside = (await store.events(100)).filter((e) => e.kind === 'wal_set_aside');
    if (aside.length) problems.push(`the write-ahead log had to be set aside: ${aside[0].detail}`);
    return { problems, runsInStore: inStore.size };
  } finally {
    await store.close();
  }
}

/** One round: kill the server in `phase` with `signal`, then check the store. */
export async function killRound(opts: {
  modelDir: string;
  dataDir: string;
  signal: KillSignal;
  phase: KillPhase;
  ledger: Ledger;
  round: number;
}): Promise<KillOutcome> {
  const { modelDir, dataDir, signal, phase, ledger, round } = opts;
  let walAtKill: boolean;
  let exit: string;
  let committed = 0;
  if (phase === 'startup') ({ walAtKill, exit } = await killAtStartup(modelDir, dataDir, signal));
  else ({ walAtKill, exit, committed } = await killMidCapture(modelDir, dataDir, signal, ledger, 1 + (round % 2), 5 + ((round * 37) % 120), round));
  // SIGTERM is the polite way: the server must close the store itself (checkpointed, no WAL left).
  const polite: string[] = [];
  if (signal === 'SIGTERM') {
    const wal = join(dataDir, 'neuroscope.duckdb.wal');
    if (/still running/.test(exit)) polite.push(`the server did not exit after SIGTERM (${exit})`);
    else if (existsSync(wal) && statSync(wal).size > 0) polite.push('SIGTERM left a non-empty WAL: the store was not closed cleanly');
  }
  const { problems, runsInStore } = await checkStore(dataDir, ledger);
  problems.push(...polite);
  return { signal, phase, walAtKill, exit, committed, runsInStore, problems };
}
