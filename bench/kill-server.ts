// bench/kill-server: kills a real `neuroscope mcp` server N times (SIGKILL and SIGTERM, at start-up
// the moment a write-ahead log appears, and in the middle of capture_activations), reopening the
// store after each kill and checking every committed run is there whole and no half-written run is
// visible. Prints one line per kill and a JSON summary.
//   npx tsx bench/kill-server.ts [--rounds 50] [--fresh]
// --fresh: every round is a start-up kill on a new, empty data dir (the store is being created).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { killRound, type KillOutcome, type KillPhase, type KillSignal, type Ledger } from '../tests/helpers/kill-harness.ts';
import { writeRandomWordModel } from '../tests/helpers/random-model.ts';
import { parseArgs } from './lib.ts';

const args = parseArgs(process.argv.slice(2), { rounds: 'number', fresh: 'boolean' });
const rounds = Number(args.rounds ?? 50);
const root = mkdtempSync(join(tmpdir(), 'ns-kill-bench-'));
const modelDir = join(root, 'model');
writeRandomWordModel(modelDir);
const dataDir = join(root, 'data');
const ledger: Ledger = new Map();
const outcomes: KillOutcome[] = [];
const started = Date.now();
try {
  for (let round = 0; round < rounds; round++) {
    const phase: KillPhase = args.fresh || round % 2 === 0 ? 'startup' : 'capture';
    const signal: KillSignal = Math.floor(round / (args.fresh ? 1 : 2)) % 2 === 0 ? 'SIGKILL' : 'SIGTERM';
    const t = Date.now();
    const o = await killRound({ modelDir, dataDir: args.fresh ? join(root, `fresh-${round}`) : dataDir, signal, phase, ledger, round });
    outcomes.push(o);
    console.log(`${String(round + 1).padStart(3)} ${phase.padEnd(7)} ${signal.padEnd(7)} wal-at-kill=${o.walAtKill} exit=${o.exit} committed=${o.committed} runs=${o.runsInStore} ${o.problems.length ? `FAIL ${o.problems.join('; ')}` : 'ok'} (${Date.now() - t} ms)`);
  }
} finally {
  rmSync(root, { recursive: true, force: true });
}
const passed = outcomes.filter((o) => o.problems.length === 0).length;
const by = (p: KillPhase, s: KillSignal) => outcomes.filter((o) => o.phase === p && o.signal === s);
console.log(`\n${passed} of ${outcomes.length} kills survived; ${ledger.size} committed runs checked after the last one.`);
console.log(JSON.stringify({
  bench: 'kill-server', fresh: !!args.fresh, rounds: outcomes.length, survived: passed, committedRuns: ledger.size,
  startupWithWal: outcomes.filter((o) => o.phase === 'startup' && o.walAtKill).length,
  startupSigkill: by('startup', 'SIGKILL').length, startupSigterm: by('startup', 'SIGTERM').length,
  captureSigkill: by('capture', 'SIGKILL').length, captureSigterm: by('capture', 'SIGTERM').length,
  seconds: Math.round((Date.now() - started) / 1000),
}));
process.exitCode = passed === outcomes.length ? 0 : 1;
