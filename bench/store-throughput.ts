// Activation-store write/read throughput: inserts N activation rows of dimension D through
// ActivationStore.addActivations (the appender path) into a fresh temp store, then reads them back.
// Usage: npx tsx bench/store-throughput.ts [N=100000] [D=128] [batch=N]
// MB/s counts vector payload only (N * D * 4 bytes).
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ActivationStore, type ActivationInput } from '../tools/store/index.ts';

const N = Number(process.argv[2] ?? 100_000);
const D = Number(process.argv[3] ?? 128);
const BATCH = Number(process.argv[4] ?? N);
if (!(N > 0 && D > 0 && BATCH > 0)) throw new Error('usage: store-throughput.ts N D [batch]');

const dir = mkdtempSync(path.join(tmpdir(), 'ns-store-bench-'));
try {
  const store = await ActivationStore.open({ dataDir: dir });
  await store.addModel({ modelId: 'bench', name: 'bench' });
  const runId = await store.addRun({ modelId: 'bench', prompt: 'bench', tokenIds: [0], tokens: [''] });

  // Rows are generated up front so only the store's work is timed.
  const layers = 24;
  const rows: ActivationInput[] = new Array(N);
  let seed = 1;
  for (let i = 0; i < N; i++) {
    const vec = new Float32Array(D);
    for (let j = 0; j < D; j++) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      vec[j] = seed / 2 ** 31 - 1;
    }
    const layer = i % layers;
    rows[i] = { runId, hook: `blocks.${layer}.hook_resid_post`, position: Math.floor(i / layers), vec };
  }

  const t0 = performance.now();
  for (let s = 0; s < N; s += BATCH) await store.addActivations(rows.slice(s, s + BATCH));
  const writeS = (performance.now() - t0) / 1000;

  const t1 = performance.now();
  const back = await store.getActivations({ runId, limit: N });
  const readS = (performance.now() - t1) / 1000;
  if (back.length !== N) throw new Error(`read back ${back.length} rows, expected ${N}`);

  await store.close();
  const mb = (N * D * 4) / 1e6;
  const fileMb = statSync(store.file).size / 1e6;
  console.log(`rows=${N} dim=${D} batch=${BATCH} payload=${mb.toFixed(1)} MB file=${fileMb.toFixed(1)} MB`);
  console.log(`write: ${writeS.toFixed(2)} s  ${(N / writeS).toFixed(0)} rows/s  ${(mb / writeS).toFixed(1)} MB/s`);
  console.log(`read:  ${readS.toFixed(2)} s  ${(N / readS).toFixed(0)} rows/s  ${(mb / readS).toFixed(1)} MB/s`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
