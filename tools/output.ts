// Shared pieces of the tools' output schemas. Every result is a JSON object whose numbers keep full
// precision; a grid always names its axes and labels its rows and columns, so a client can draw it
// or index it without guessing; a missing cell is null (JSON has no NaN).
import { z } from 'zod';

export const Axis = z.object({
  name: z.string().describe('what the axis indexes: layer, position, head, expert, neuron, query, key, mode, ...'),
  labels: z.array(z.string()).describe('one label per row (or column), e.g. "L0", "P3", "H5"'),
});
export type Axis = z.infer<typeof Axis>;

export const Grid = z.object({
  rows: Axis,
  cols: Axis,
  values: z.array(z.array(z.number().nullable())).describe('values[row][col]; null where the cell was not measured'),
}).describe('a labelled grid: values[i][j] belongs to rows.labels[i] and cols.labels[j]');
export type Grid = z.infer<typeof Grid>;

/** A grid from labels and values; NaN cells become null. */
export function grid(rows: Axis, cols: Axis, values: readonly (readonly number[])[]): Grid {
  return { rows, cols, values: values.map((r) => r.map((x) => (Number.isFinite(x) ? x : null))) };
}

export const RunIds = z.array(z.string()).describe('run ids (run_...) of the forward passes, one per prompt');
export const PairRunIds = z.object({ clean: RunIds, corrupted: RunIds });
export const ExperimentId = z.string().describe('the experiment (exp_...) whose rows hold every number: query_activations SELECT * FROM results WHERE experiment_id = ...');

/** Notes about the inputs a tool accepted with `allowUnknown: true` (words outside the vocabulary). */
export const Warnings = z.array(z.string()).optional().describe('what was accepted but may make the numbers meaningless');
