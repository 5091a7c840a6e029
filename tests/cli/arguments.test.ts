// Wrong options on the command line get the CLI's own message (what was wrong, which options the
// command takes), not node's parseArgs text.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { expect, it } from 'vitest';

const REPO = join(import.meta.dirname, '..', '..');
const cli = (...args: string[]) => spawnSync(process.execPath, [join(REPO, 'bin', 'neuroscope.js'), ...args], { cwd: REPO, encoding: 'utf8', timeout: 120_000 });

it('names an unknown option, a missing value and a value given to a switch, with the valid options', () => {
  const bogus = cli('suite', '--bogus-flag');
  expect(bogus.status).toBe(2);
  expect(bogus.stderr.trim()).toBe('neuroscope suite: unknown option --bogus-flag; suite takes: --model VALUE, --compare VALUE, --only VALUE, --out VALUE, --threads VALUE (neuroscope suite --help)');
  expect(bogus.stderr).not.toContain('positional argument');

  const missing = cli('suite', '--model');
  expect(missing.status).toBe(2);
  expect(missing.stderr.trim()).toBe('neuroscope suite: option --model needs a value, as in --model VALUE (neuroscope suite --help)');

  const valued = cli('start', '--suite=3');
  expect(valued.status).toBe(2);
  expect(valued.stderr.trim()).toBe('neuroscope start: option --suite is a switch and takes no value; write --suite alone (neuroscope start --help)');
}, 120_000);
