// bench/sql-limits: the SQL tool's limits measured on a real `neuroscope mcp --http` server: heavy
// queries (the two from issue 13 and others that build huge values, huge results or run forever)
// sent by one client while a second client keeps calling; reports how each was cut, the time to the
// answer, the server's peak RSS while it ran (from /proc) and the other client's slowest answer.
//   npx tsx bench/sql-limits.ts
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { httpClient, makeModel, startHttpChild, text } from '../tests/mcp/helpers.ts';

const QUERIES = [
  'SELECT range(50000000) AS l',
  "SELECT repeat('x',1000000) FROM range(2001)",
  "SELECT repeat('x',100000) FROM range(2001)",
  'SELECT range(4096) FROM range(3000)',
  'SELECT vec FROM activations',
  'SELECT count(*) FROM range(1000000000000)',
  'SELECT list(i) FROM range(1000000000) t(i)',
];

const cutBy = (r: unknown) => (r as { structuredContent?: { cutBy?: string } }).structuredContent?.cutBy;
const rssKb = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
const root = mkdtempSync(join(tmpdir(), 'ns-sql-bench-'));
const server = await startHttpChild(makeModel(root), join(root, 'data'), 'sql-limits-bench-token-0123456789abcdefgh');
const rows: Record<string, string | number>[] = [];
try {
  const a = await httpClient(server.url, server.token);
  const b = await httpClient(server.url, server.token);
  // Some activations to read: 48 prompts x every residual hook.
  await a.callTool({ name: 'capture_activations', arguments: { prompts: Array.from({ length: 48 }, (_, i) => `w${i % 60} w${(i * 7) % 60} w3 w4 w5 w6 w7 w8`), hooks: ['blocks.*.hook_resid_post', 'blocks.*.attn.hook_z'] } }, undefined, { timeout: 120_000 });
  const pid = server.proc.pid!;
  for (const sql of QUERIES) {
    let peak = rssKb(pid);
    const sampler = setInterval(() => (peak = Math.max(peak, rssKb(pid))), 25);
    let slowest = 0;
    let answered = 0;
    let done = false;
    const other = (async () => {
      while (!done) {
        const t = Date.now();
        await b.callTool({ name: 'query_activations', arguments: { sql: 'SELECT count(*) FROM runs' } });
        await b.callTool({ name: 'tokenize', arguments: { text: 'w1 w2' } });
        slowest = Math.max(slowest, Date.now() - t);
        answered++;
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const t0 = Date.now();
    const r = await a.callTool({ name: 'query_activations', arguments: { sql, maxRows: 2000 } }, undefined, { timeout: 120_000 });
    const ms = Date.now() - t0;
    done = true;
    await other;
    clearInterval(sampler);
    const body = text(r);
    const outcome = (r as { isError?: boolean }).isError
      ? (/SQL (\w+)/.exec(body)?.[1] ?? 'error')
      : cutBy(r) ? `cut: ${cutBy(r)}` : 'complete';
    rows.push({ sql, outcome, seconds: +(ms / 1000).toFixed(2), serverPeakRssMB: Math.round(peak / 1024), otherClientCalls: answered, otherClientSlowestMs: slowest });
    console.log(`${sql.padEnd(48)} ${String(outcome).padEnd(14)} ${(ms / 1000).toFixed(2).padStart(6)} s  peak RSS ${Math.round(peak / 1024)} MB  other client: ${answered} answers, slowest ${slowest} ms`);
  }
  await a.close();
  await b.close();
} finally {
  await server.stop();
  rmSync(root, { recursive: true, force: true });
}
console.log(JSON.stringify({ bench: 'sql-limits', rows }));
