// A writer killed without closing the store (SIGKILL, OOM, a crash) must not cost the store: the
// file reopens with every committed row.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { ActivationStore } from '../../tools/store/index.ts';

const root = mkdtempSync(join(tmpdir(), 'ns-crash-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

it('reopens after the writing process is killed, with its committed rows', async () => {
  const script = join(root, 'writer.mts');
  writeFileSync(script, `
    import { ActivationStore } from ${JSON.stringify(join(import.meta.dirname, '..', '..', 'tools', 'store', 'index.ts'))};
    const s = await ActivationStore.open({ dataDir: ${JSON.stringify(join(root, 'data'))} });
    await s.addModel({ modelId: 'm', name: 'm' });
    const run = await s.addRun({ modelId: 'm', prompt: 'a b', tokenIds: [1, 2], tokens: ['a', 'b'] });
    await s.addActivations([{ runId: run, hook: 'blocks.0.hook_resid_post', position: 1, vec: [1, 2, 3] }]);
    process.stdout.write('written ' + run + '\\n');
    setInterval(() => {}, 1000);
  `);
  const child = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const runId = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      const m = /written (\S+)/.exec(d.toString());
      if (m) resolve(m[1]);
    });
    child.on('exit', (code) => reject(new Error(`writer exited early (${code})`)));
  });
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  const store = await ActivationStore.open({ dataDir: join(root, 'data') });
  try {
    expect((await store.getRun(runId))?.tokens).toEqual(['a', 'b']);
    const acts = await store.getActivations({ runId });
    expect(Array.from(acts[0].vec)).toEqual([1, 2, 3]);
  } finally {
    await store.close();
  }
}, 60_000);
