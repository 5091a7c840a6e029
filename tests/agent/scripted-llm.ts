// A scripted OpenAI-compatible chat-completions server on 127.0.0.1 for agent tests: each request
// takes the next step of the script (a reply, an HTTP error, or a hang), streamed as SSE chunks
// with unique ids like a real server, or as one JSON body when the client does not stream. Steps may
// be functions of the request, so a scripted model can read tool results (and cite their ids).
// Faults a harsh server shows: a stream that stalls after N chunks (headers sent, then silence), a
// connection reset mid-stream or before any response, finish_reason "length", tool-call names
// repeated in every delta.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ScriptedToolCall {
  name: string;
  /** A string is sent as it is (so it can be broken JSON); an object is JSON-encoded. */
  arguments: string | Record<string, unknown>;
  /** Default: a fresh unique id; "" sends none. */
  id?: string;
}

export type Reply = {
  text?: string;
  reasoning?: string;
  toolCalls?: ScriptedToolCall[];
  usage?: { prompt_tokens: number; completion_tokens: number; cached_tokens?: number; reasoning_tokens?: number } | null;
  /** Characters per streamed content chunk (default 7). */
  chunk?: number;
  /** Stream this many chunks, then send nothing more (the connection stays open). */
  stallAfter?: number;
  /** Stream this many chunks, then destroy the connection. */
  resetAfter?: number;
  /** Overrides the finish reason (e.g. "length": the reply hit the output limit). */
  finishReason?: string;
  /** Send each tool call's name again in every delta (some compatible servers do). */
  repeatNames?: boolean;
};
export type ErrorReply = { status: number; body?: unknown; headers?: Record<string, string> };
export type Hang = { hang: true };
/** The connection is destroyed before any response (the client sees a connection error). */
export type Reset = { reset: true };
export interface RecordedRequest {
  turn: number;
  body: any;
  /** The request body's size in bytes, as sent. */
  bytes: number;
  headers: IncomingMessage['headers'];
}
export type Step = Reply | ErrorReply | Hang | Reset | ((req: RecordedRequest) => Reply | ErrorReply | Hang | Reset);

export interface ScriptedLlm {
  url: string;
  requests: RecordedRequest[];
  /** Steps not yet used. */
  remaining: () => number;
  /** Appends steps (e.g. the rest of a script after an interruption). */
  push: (...steps: Step[]) => void;
  /** Called when a hang step is reached. */
  onHang?: (req: RecordedRequest) => void;
  close: () => Promise<void>;
}

let serial = 0;
const uid = (p: string) => `${p}${Date.now().toString(36)}${(serial++).toString(36)}${Math.random().toString(36).slice(2, 8)}`;

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let s = '';
    req.on('data', (d) => (s += d));
    req.on('end', () => resolve(s));
    req.on('error', reject);
  });
}

function usageOf(r: Reply, body: any) {
  if (r.usage === null) return undefined;
  const u = r.usage ?? { prompt_tokens: Math.ceil(JSON.stringify(body.messages ?? []).length / 4), completion_tokens: Math.ceil(((r.text ?? '').length + JSON.stringify(r.toolCalls ?? []).length) / 4) };
  return {
    prompt_tokens: u.prompt_tokens, completion_tokens: u.completion_tokens, total_tokens: u.prompt_tokens + u.completion_tokens,
    prompt_tokens_details: { cached_tokens: u.cached_tokens ?? 0 }, completion_tokens_details: { reasoning_tokens: u.reasoning_tokens ?? 0 },
  };
}

function send(res: ServerResponse, body: any, r: Reply): void {
  const id = uid('chatcmpl-');
  const created = Math.floor(Date.now() / 1000);
  const model = body.model ?? 'scripted';
  const calls = (r.toolCalls ?? []).map((c) => ({ id: c.id ?? uid('call_'), name: c.name, args: typeof c.arguments === 'string' ? c.arguments : JSON.stringify(c.arguments) }));
  const finish = calls.length ? 'tool_calls' : 'stop';
  if (!body.stream) {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({
      id, object: 'chat.completion', created, model,
      choices: [{ index: 0, finish_reason: finish, message: { role: 'assistant', content: r.text ?? null, ...(calls.length ? { tool_calls: calls.map((c) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: c.args } })) } : {}) } }],
      usage: usageOf(r, body),
    }));
    return;
  }
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
  const out: string[] = [];
  const chunk = (delta: Record<string, unknown>, finish_reason: string | null = null) =>
    out.push(`data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta, finish_reason }] })}\n\n`);
  chunk({ role: 'assistant', content: '' });
  const size = r.chunk ?? 7;
  if (r.reasoning) for (let i = 0; i < r.reasoning.length; i += size) chunk({ reasoning_content: r.reasoning.slice(i, i + size) });
  if (r.text) for (let i = 0; i < r.text.length; i += size) chunk({ content: r.text.slice(i, i + size) });
  calls.forEach((c, index) => {
    chunk({ tool_calls: [{ index, ...(c.id ? { id: c.id } : {}), type: 'function', function: { name: c.name, arguments: '' } }] });
    for (let i = 0; i < c.args.length; i += 11) chunk({ tool_calls: [{ index, function: { ...(r.repeatNames ? { name: c.name } : {}), arguments: c.args.slice(i, i + 11) } }] });
  });
  chunk({}, r.finishReason ?? finish);
  const usage = usageOf(r, body);
  if (body.stream_options?.include_usage && usage) out.push(`data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model, choices: [], usage })}\n\n`);
  out.push('data: [DONE]\n\n');
  const cut = r.stallAfter ?? r.resetAfter;
  if (cut === undefined) {
    res.end(out.join(''));
    return;
  }
  res.write(out.slice(0, cut).join(''));
  if (r.resetAfter !== undefined) setTimeout(() => res.socket?.destroy(), 5); // after the chunks are flushed
}

export async function startScriptedLlm(script: Step[]): Promise<ScriptedLlm> {
  const steps = [...script];
  const requests: RecordedRequest[] = [];
  const open = new Set<ServerResponse>();
  const api: ScriptedLlm = {
    url: '',
    requests,
    remaining: () => steps.length,
    push: (...s) => steps.push(...s),
    close: () => new Promise((resolve) => {
      for (const r of open) r.destroy();
      server.closeAllConnections?.();
      server.close(() => resolve());
    }),
  };
  const server = createServer(async (req, res) => {
    open.add(res);
    res.on('close', () => open.delete(res));
    const raw = await readBody(req);
    if (req.method !== 'POST' || !req.url?.endsWith('/chat/completions')) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: `scripted LLM: no route ${req.method} ${req.url}`, type: 'invalid_request_error' } }));
      return;
    }
    const body = JSON.parse(raw);
    const rec: RecordedRequest = { turn: requests.length, body, bytes: Buffer.byteLength(raw), headers: req.headers };
    requests.push(rec);
    let step = steps.shift();
    if (!step) {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: `scripted LLM: the script has no step for request ${rec.turn}`, type: 'invalid_request_error' } }));
      return;
    }
    if (typeof step === 'function') {
      try {
        step = step(rec);
      } catch (e) {
        // A failed expectation inside a step: fail the request (not retried) so the test fails fast.
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: `scripted step ${rec.turn} failed: ${(e as Error).message}`, type: 'invalid_request_error' } }));
        return;
      }
    }
    if ('reset' in step) {
      req.socket.destroy();
      return;
    }
    if ('hang' in step) {
      api.onHang?.(rec);
      return; // never answered; the client gives up (abort) and the socket closes
    }
    if ('status' in step) {
      res.writeHead(step.status, { 'content-type': 'application/json', ...step.headers });
      res.end(JSON.stringify(step.body ?? { error: { message: `scripted error ${step.status}`, type: 'scripted', code: null } }));
      return;
    }
    send(res, body, step);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  api.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  return api;
}

/** The tool messages of a request (what the agent answered the model's tool calls with). */
export function toolMessages(req: RecordedRequest): { tool_call_id: string; content: string }[] {
  return (req.body.messages as any[]).filter((m) => m.role === 'tool');
}

/** The last tool message's text in a request. */
export function lastToolText(req: RecordedRequest): string {
  const t = toolMessages(req);
  return t[t.length - 1]?.content ?? '';
}

/** Runs `fn` with a scripted server for `script`, closing it afterwards. */
export async function withLlm(script: Step[], fn: (llm: ScriptedLlm) => Promise<void>): Promise<void> {
  const llm = await startScriptedLlm(script);
  try {
    await fn(llm);
  } finally {
    await llm.close();
  }
}
