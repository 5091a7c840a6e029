// `neuroscope bench [NAME] [options]`: lists the benchmarks in bench/ or runs one in a child process
// (each script reads its own options from argv, and is also runnable as `npx tsx bench/NAME.ts`).
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const BENCH_DIR = join(import.meta.dirname, '..', 'bench');

/** Benchmark scripts (not the shared helpers) with the first line of their header comment. */
export function listBenchmarks(): { name: string; about: string }[] {
  return readdirSync(BENCH_DIR).filter((f) => f.endsWith('.ts') && f !== 'lib.ts').sort().map((f) => {
    const lines = readFileSync(join(BENCH_DIR, f), 'utf8').split('\n');
    const header = lines.slice(0, lines.findIndex((l) => !l.startsWith('//'))).map((l) => l.replace(/^\/\/\s*/, '')).join(' ');
    const sentence = header.replace(/^bench\/[\w-]+:\s*/, '').split(/(?<=[.;:])\s/)[0].replace(/[.;:]$/, '');
    return { name: f.slice(0, -3), about: sentence };
  });
}

export async function runBenchmark(args: string[]): Promise<number> {
  const [name, ...rest] = args;
  const all = listBenchmarks();
  if (!name || name === '--help' || name === '-h') {
    console.log(`neuroscope bench NAME [options]   (options per benchmark: bench/README.md)\n\n${all.map((b) => `  ${b.name.padEnd(16)} ${b.about}`).join('\n')}`);
    return 0;
  }
  if (!all.some((b) => b.name === name)) {
    console.error(`neuroscope bench: unknown benchmark "${name}"; available: ${all.map((b) => b.name).join(', ')}`);
    return 2;
  }
  const child = spawn(process.execPath, ['--import', 'tsx', join(BENCH_DIR, `${name}.ts`), ...rest], { stdio: 'inherit' });
  // Ctrl-C reaches the child through the terminal; wait for it to finish either way.
  return new Promise((res) => child.on('exit', (code, signal) => res(code ?? (signal ? 130 : 1))));
}
