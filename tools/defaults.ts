// The defaults every face of NeuroScope shares (CLI, MCP server, chat, agent, the store), decided
// here once: which model a command means when none is named, and where the user's data lives.
import { resolve } from 'node:path';

/** The model used when none is given: the built-in gpt-oss-tiny "tiny-s" (seed 0, built on first use). */
export const DEFAULT_MODEL = 'tiny-s';

/** The user's data directory (models, store, findings, sessions): NEUROSCOPE_DATA, else ./.neuroscope. */
export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  return resolve(env.NEUROSCOPE_DATA || '.neuroscope');
}

/** A data directory argument, or the default one; always absolute. */
export const dataDirOrDefault = (dataDir?: string): string => (dataDir ? resolve(dataDir) : defaultDataDir());

/** A model argument (built-in name or checkpoint directory), or the default model. */
export const modelOrDefault = (model?: string): string => model ?? DEFAULT_MODEL;
