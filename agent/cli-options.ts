// Options shared by `investigate` and `chat` (kept apart from agent/cli.ts so the command table
// loads without the agent's dependencies).
export const AGENT_OPTIONS = {
  model: { type: 'string' }, data: { type: 'string' }, threads: { type: 'string' },
  mcp: { type: 'string' }, 'mcp-url': { type: 'string' }, 'mcp-token': { type: 'string' },
  'llm-model': { type: 'string' }, 'llm-base-url': { type: 'string' }, 'reasoning-effort': { type: 'string' }, 'llm-backend': { type: 'string' }, 'context-tokens': { type: 'string' }, 'no-llm': { type: 'boolean' },
} as const;

export const AGENT_USAGE = '[--model DIR|tiny-s|tiny-m] [--data DIR] [--mcp in-process|stdio | --mcp-url URL --mcp-token T] [--llm-model NAME] [--llm-base-url URL] [--reasoning-effort minimal|low|medium|high] [--llm-backend openai|langchain] [--context-tokens N] [--no-llm]';
