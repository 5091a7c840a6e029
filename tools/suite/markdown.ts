// Markdown pieces for reports: tables, numbers, SQL blocks.
export function num(x: number | null | undefined, digits = 3): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return '–';
  const s = Math.abs(x) >= 1000 ? x.toFixed(0) : x.toFixed(digits);
  // Float noise (-1.26e-19) rounds to "-0.000": print the 0 that is meant.
  return /^-0(\.0+)?$/.test(s) ? s.slice(1) : s;
}

export function table(headers: string[], rows: (string | number | null)[][]): string {
  // Counts and indices (layers, sizes) print as integers; measurements with 3 decimals.
  const cell = (v: string | number | null) => (typeof v === 'number' ? (Number.isInteger(v) ? String(v) : num(v)) : (v ?? '–')).toString().replace(/\|/g, '\\|');
  return [`| ${headers.join(' | ')} |`, `| ${headers.map(() => '---').join(' | ')} |`, ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`)].join('\n');
}

/** A grid (rows x cols) as a table with row labels in the first column. */
export function gridTable(rowLabels: string[], colLabels: string[], values: readonly (readonly (number | null)[])[], corner = ''): string {
  return table([corner, ...colLabels], rowLabels.map((r, i) => [r, ...values[i].map((v) => num(v, 2))]));
}

export const sqlBlock = (sql: string): string => `\`\`\`sql\n${sql}\n\`\`\``;
