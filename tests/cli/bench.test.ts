// `npm run bench` (neuroscope bench): lists the benchmark scripts, runs one with its own options,
// and names the available ones for a wrong name.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';

const REPO = join(import.meta.dirname, '..', '..');
const cli = (...args: string[]) => spawnSync(process.execPath, [join(REPO, 'bin', 'neuroscope.js'), 'bench', ...args], { cwd: REPO, encoding: 'utf8', timeout: 120_000 });

it('lists every script in bench/ but the helpers, runs one with its arguments, refuses an unknown name', () => {
  const list = cli();
  expect(list.status).toBe(0);
  const names = readdirSync(join(REPO, 'bench')).filter((f) => f.endsWith('.ts') && f !== 'lib.ts').map((f) => f.slice(0, -3));
  expect(names.length).toBeGreaterThanOrEqual(6);
  for (const n of names) expect(list.stdout).toMatch(new RegExp(`^  ${n} +\\S`, 'm'));
  expect(list.stdout).not.toMatch(/^ {2}lib /m);

  const run = cli('store-throughput', '2000', '16');
  expect(run.status, run.stderr).toBe(0);
  expect(run.stdout).toContain('rows=2000 dim=16');
  expect(run.stdout).toMatch(/write: [\d.]+ s +\d+ rows\/s/);

  const bad = cli('nope');
  expect(bad.status).toBe(2);
  expect(bad.stderr).toContain('unknown benchmark "nope"; available: ');
  const available = bad.stderr.split('available: ')[1].trim().split(', ');
  expect(available.sort()).toEqual([...names].sort());
}, 120_000);
