// A dictionary spliced into the forward at one hook: x -> acts = encode(x), error = x - decode(acts),
// interventions on acts and error, then x' = decode(acts') + error'. With no intervention x is left
// as it was (bit for bit), so attaching a dictionary never changes a run by itself.
import { applyIntervention, type ResolvedIntervention } from '../intervention.ts';
import type { Tensor } from '../tensor.ts';
import type { DictionaryRunner } from './dictionary.ts';

export interface SaeAttachment {
  /** The hook it reads and writes, e.g. "blocks.2.hook_resid_post". */
  site: string;
  saeId: string;
  runner: DictionaryRunner;
}

export interface SpliceRequest {
  acts?: ResolvedIntervention;
  error?: ResolvedIntervention;
  captureActs: boolean;
  captureError: boolean;
}

export function spliceWanted(r: SpliceRequest): boolean {
  return Boolean(r.acts || r.error || r.captureActs || r.captureError);
}

/** Runs the dictionary on x [B, T, H]; returns the new x (null: unchanged) and the captured parts. */
export async function spliceDictionary(x: Tensor, runner: DictionaryRunner, r: SpliceRequest): Promise<{ out: Tensor | null; acts?: Tensor; error?: Tensor }> {
  const [B, T, H] = x.dims;
  const S = runner.dict.dSae;
  const acts: Tensor = { data: await runner.encode(x.data), dims: [B, T, S] };
  const recon = await runner.decode(acts.data);
  const error: Tensor = { data: new Float32Array(x.data.length), dims: [B, T, H] };
  for (let i = 0; i < error.data.length; i++) error.data[i] = x.data[i] - recon[i];
  if (r.acts) applyIntervention(acts, r.acts);
  if (r.error) applyIntervention(error, r.error);
  let out: Tensor | null = null;
  if (r.acts || r.error) {
    const next = r.acts ? await runner.decode(acts.data) : recon;
    const data = new Float32Array(x.data.length);
    for (let i = 0; i < data.length; i++) data[i] = next[i] + error.data[i];
    out = { data, dims: [B, T, H] };
  }
  return { out, acts: r.captureActs ? acts : undefined, error: r.captureError ? error : undefined };
}
