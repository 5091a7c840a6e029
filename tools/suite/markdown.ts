// Markdown pieces for reports: tables, numbers, SQL blocks.
export const num = (x: number | null | undefined, digits = 3): string =>
  x === null || x === undefined || !Number.isFinite(x) ? '–' : Math.abs(x) >= 1000 ? x.toFixed(0) : x.toFixed(digits);

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
