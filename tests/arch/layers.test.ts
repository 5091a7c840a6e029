// The arrows of the design point one way: cli -> agent -> mcp-server -> tools -> engine. Every
// static and dynamic import of every source file is read (TypeScript's own pre-processor) and
// resolved; an import against an arrow fails here with the file and the import.
import { readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..', '..');
const LAYERS = ['engine', 'tools', 'mcp-server', 'agent', 'cli'] as const;
type Layer = (typeof LAYERS)[number];

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return sources(p);
    return /\.(ts|tsx)$/.test(name) ? [p] : [];
  });
}

const layerOf = (file: string): Layer | null => {
  const top = relative(ROOT, file).split(/[\\/]/)[0];
  return (LAYERS as readonly string[]).includes(top) ? (top as Layer) : null;
};

/** "agent/cli.ts imports ../cli/x.ts (cli)" for every relative import that points to a higher layer. */
function violations(layer: Layer): string[] {
  const rank = LAYERS.indexOf(layer);
  return sources(join(ROOT, layer)).flatMap((file) => {
    const info = ts.preProcessFile(ts.sys.readFile(file) ?? '', true, true);
    return info.importedFiles
      .map((f) => f.fileName)
      .filter((spec) => spec.startsWith('.'))
      .map((spec) => ({ spec, to: layerOf(resolve(dirname(file), spec)) }))
      .filter(({ to }) => to !== null && LAYERS.indexOf(to) > rank)
      .map(({ spec, to }) => `${relative(ROOT, file)} imports ${spec} (${to})`);
  });
}

describe('layering', () => {
  it('reads imports (the check itself sees static and dynamic ones)', () => {
    const info = ts.preProcessFile("import a from '../cli/x.ts';\nconst b = await import('../cli/y.ts');", true, true);
    expect(info.importedFiles.map((f) => f.fileName)).toEqual(['../cli/x.ts', '../cli/y.ts']);
  });

  for (const layer of LAYERS) {
    it(`${layer}/ imports nothing above it (${LAYERS.slice(LAYERS.indexOf(layer) + 1).join(', ') || 'top'})`, () => {
      expect(violations(layer)).toEqual([]);
    });
  }
});
