// Short readable ids: a kind prefix plus 10 random base32 characters (50 bits), e.g. "run_k3x9qz7m2a".
// Random rather than sequential so ids from separate processes or stores never collide when merged.
import { randomBytes } from 'node:crypto';

const ALPHABET = 'abcdefghjkmnpqrstuvwxyz23456789'; // no i/l/o/0/1: easy to read back and type

export type IdPrefix = 'mdl' | 'run' | 'exp' | 'fnd' | 'sae';

export function newId(prefix: IdPrefix, length = 10): string {
  const bytes = randomBytes(length);
  let s = '';
  for (let i = 0; i < length; i++) s += ALPHABET[bytes[i] % ALPHABET.length];
  return `${prefix}_${s}`;
}
