// The real server, killed: SIGKILL and SIGTERM at start-up (the moment a write-ahead log appears)
// and in the middle of capture_activations, alternating, on one data dir. After every kill the
// store reopens with every committed run whole, and no half-written run is visible. A sample of
// rounds here; `npm run bench -- kill-server --rounds 50` runs many (figures in bench/README.md).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { killRound, type KillPhase, type KillSignal, type Ledger } from '../helpers/kill-harness.ts';
import { makeModel } from './helpers.ts';

const root = mkdtempSync(join(tmpdir(), 'ns-kill-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

it('survives SIGKILL and SIGTERM at start-up and mid-capture with every committed run intact', async () => {
  const modelDir = makeModel(root);
  const dataDir = join(root, 'data');
  const ledger: Ledger = new Map();
  const plan: [KillPhase, KillSignal][] = [
    ['startup', 'SIGKILL'], ['capture', 'SIGKILL'], ['startup', 'SIGTERM'], ['capture', 'SIGTERM'],
    ['startup', 'SIGKILL'], ['capture', 'SIGKILL'], ['capture', 'SIGTERM'], ['startup', 'SIGTERM'],
  ];
  const outcomes = [];
  for (const [round, [phase, signal]] of plan.entries()) {
    const o = await killRound({ modelDir, dataDir, signal, phase, ledger, round });
    outcomes.push(o);
    expect(o.problems, `round ${round} (${phase}, ${signal}, exit ${o.exit})`).toEqual([]);
    expect(o.runsInStore).toBeGreaterThanOrEqual(ledger.size - 0);
  }
  // The rounds really hit work in progress: start-up kills with a WAL on disk, captures committed before the kill.
  expect(outcomes.filter((o) => o.phase === 'startup' && o.walAtKill).length).toBeGreaterThan(0);
  expect(outcomes.filter((o) => o.phase === 'capture').every((o) => o.committed > 0)).toBe(true);
  expect(ledger.size).toBeGreaterThan(0);
}, 300_000);
