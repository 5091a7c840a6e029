// Near matches for names a caller got wrong (argument names, hooks, tools, words), so an error can
// say what was probably meant.

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0];
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = d[j];
      d[j] = Math.min(d[j] + 1, d[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return d[b.length];
}

/**
 * Up to `n` names close to `name`, nearest first: case-insensitive edit distance at most a third of
 * its length or 2, and less than its length (a one-letter word is not "near" every two-letter one).
 */
export function nearestNames(name: string, names: readonly string[], n = 3): string[] {
  const limit = Math.min(Math.max(2, Math.floor(name.length / 3)), name.length - 1);
  return names
    .map((x) => ({ x, d: editDistance(name.toLowerCase(), x.toLowerCase()) }))
    .filter((c) => c.d <= limit)
    .sort((a, b) => a.d - b.d || a.x.localeCompare(b.x))
    .slice(0, n)
    .map((c) => c.x);
}

/** The nearest name, or null when none is close. */
export const closestName = (name: string, names: readonly string[]): string | null => nearestNames(name, names, 1)[0] ?? null;
