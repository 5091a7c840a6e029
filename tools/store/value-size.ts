// Limits on the size of one value a SQL-tool query may build with a scalar function.
//
// DuckDB checks for interrupts between chunks, not inside one function call: `SELECT range(50000000)`
// builds a 50-million-element list in one call (measured on DuckDB 1.5: over 100 s and 4.5 GB,
// deaf to interrupt), and `repeat('x', 1000000)` over 2001 rows builds 2 GB in one chunk (53 s
// from interrupt to stop on the shared machine). No timeout or memory_limit reaches inside such a
// call, so the functions that amplify a small query into a huge value are checked before anything
// runs: their size arguments must be constants (simple arithmetic allowed) within these limits.
// Table functions (FROM range(...)) stream chunk by chunk and stay bounded by the timeout.

// One chunk holds up to 2048 rows, each with its own built value, so the limits are per value and
// sized for a chunk: 2048 x 4096 list elements (~8M) or 2048 x 100k characters (~200 MB).
// (range(1000000) FROM range(3000) reached 4.2 GB under a 1M cap; range(10000) FROM range(3000)
// took 21 s to stop against a 10 s timeout under a 10k cap, on the shared 2-core machine.)
/** Elements one list-building call may produce (range, generate_series, list_resize...). */
export const MAX_BUILT_ELEMENTS = 4_096;
/** Characters one string-building call may produce (repeat, lpad, rpad, printf widths). */
export const MAX_BUILT_CHARS = 100_000;

type AstNode = { [key: string]: unknown };

const OPERATORS: Record<string, (a: number, b: number) => number> = {
  '+': (a, b) => a + b, '-': (a, b) => a - b, '*': (a, b) => a * b, '/': (a, b) => a / b,
  '//': (a, b) => Math.floor(a / b), '%': (a, b) => a % b, '^': (a, b) => a ** b, '**': (a, b) => a ** b,
};

/** The number a constant expression evaluates to (literals, + - * / // % ^, casts), else null. */
export function foldNumber(n: unknown): number | null {
  const node = n as AstNode | undefined;
  if (!node || typeof node !== 'object') return null;
  if (node.class === 'CONSTANT') {
    const v = node.value as { value?: unknown; is_null?: boolean } | undefined;
    if (!v || v.is_null) return null;
    const x = typeof v.value === 'string' || typeof v.value === 'number' ? Number(v.value) : NaN;
    return Number.isFinite(x) ? x : null;
  }
  if (node.class === 'CAST') return foldNumber(node.child);
  const children = (node.children as unknown[] | undefined) ?? [];
  if (node.class === 'FUNCTION' && typeof node.function_name === 'string') {
    if (node.function_name === '-' && children.length === 1) {
      const a = foldNumber(children[0]);
      return a === null ? null : -a;
    }
    const op = OPERATORS[node.function_name];
    if (op && children.length === 2) {
      const a = foldNumber(children[0]);
      const b = foldNumber(children[1]);
      return a === null || b === null ? null : op(a, b);
    }
  }
  return null;
}

function foldString(n: unknown): string | null {
  const node = n as AstNode | undefined;
  if (node?.class !== 'CONSTANT') return null;
  const v = node.value as { value?: unknown } | undefined;
  return typeof v?.value === 'string' ? v.value : null;
}

const fmt = (x: number) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : String(x));

function listCount(name: string, args: unknown[]): string | null {
  const nums = args.map(foldNumber);
  if (nums.some((x) => x === null)) {
    return `${name}() as a value needs constant arguments in the SQL tool (a computed size could build a list too large to interrupt); use FROM ${name}(...) as a table, or constants up to ${fmt(MAX_BUILT_ELEMENTS)} elements`;
  }
  const [a, b, c] = nums as number[];
  const [start, stop, step] = args.length === 1 ? [0, a, 1] : [a, b, args.length === 3 ? c : 1];
  const count = step === 0 ? Infinity : Math.max(0, Math.ceil((stop - start) / step)) + (name === 'generate_series' ? 1 : 0);
  return count > MAX_BUILT_ELEMENTS ? `${name}() would build a list of ${fmt(count)} elements; one value may hold at most ${fmt(MAX_BUILT_ELEMENTS)} (MAX_BUILT_ELEMENTS): use FROM ${name}(...) as a table, which streams, or a smaller range` : null;
}

const SIZE_CHECKS: Record<string, (args: unknown[]) => string | null> = {
  range: (args) => listCount('range', args),
  generate_series: (args) => listCount('generate_series', args),
  repeat: (args) => {
    const times = foldNumber(args[1]);
    const s = foldString(args[0]);
    if (times === null) return `repeat() needs a constant count in the SQL tool (a computed one could build a string too large to interrupt)`;
    const chars = (s?.length ?? 1) * times;
    if (s === null && times > 100) return `repeat() of a computed string may repeat it at most 100 times in the SQL tool, not ${fmt(times)}`;
    return chars > MAX_BUILT_CHARS ? `repeat() would build a value of ${fmt(chars)} characters (or elements); one value may hold at most ${fmt(MAX_BUILT_CHARS)} (MAX_BUILT_CHARS)` : null;
  },
  lpad: (args) => padCheck('lpad', args),
  rpad: (args) => padCheck('rpad', args),
  list_resize: (args) => resizeCheck('list_resize', args),
  printf: (args) => widthCheck('printf', args),
  format: (args) => widthCheck('format', args),
  bar: (args) => (args.length < 4 ? null : padCheck('bar', [null, args[3]])),
  array_resize: (args) => resizeCheck('array_resize', args),
};

function padCheck(name: string, args: unknown[]): string | null {
  const n = foldNumber(args[1]);
  if (n === null) return `${name}() needs a constant length in the SQL tool`;
  return n > MAX_BUILT_CHARS ? `${name}() would build a string of ${fmt(n)} characters; one value may hold at most ${fmt(MAX_BUILT_CHARS)} (MAX_BUILT_CHARS)` : null;
}

/** A field width in a printf- or fmt-style format string ("%0100000000d", "{:>100000}") pads a value to that many characters. */
function widthCheck(name: string, args: unknown[]): string | null {
  const f = foldString(args[0]);
  if (f === null) return `${name}() needs a constant format string in the SQL tool`;
  const widths = [...f.matchAll(/%[-+ 0#]*(\d+)|\{[^}]*?(\d+)[^}]*\}/g)].map((m) => Number(m[1] ?? m[2]));
  const widest = Math.max(0, ...widths);
  return widest > MAX_BUILT_CHARS ? `${name}() pads to ${fmt(widest)} characters; one value may hold at most ${fmt(MAX_BUILT_CHARS)} (MAX_BUILT_CHARS)` : null;
}

function resizeCheck(name: string, args: unknown[]): string | null {
  const n = foldNumber(args[1]);
  if (n === null) return `${name}() needs a constant size in the SQL tool`;
  return n > MAX_BUILT_ELEMENTS ? `${name}() would build a list of ${fmt(n)} elements; one value may hold at most ${fmt(MAX_BUILT_ELEMENTS)} (MAX_BUILT_ELEMENTS)` : null;
}

/** Why a scalar function call would build a value too large to interrupt, or null when it would not. */
export function oversizedValue(fn: AstNode): string | null {
  const name = String(fn.function_name ?? '').toLowerCase();
  const check = SIZE_CHECKS[name];
  return check ? check((fn.children as unknown[] | undefined) ?? []) : null;
}
