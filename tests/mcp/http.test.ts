// The MCP server over Streamable HTTP (a child process on a free port): the bearer token and the
// Host/Origin checks, oversized bodies, and two clients at once on the shared model.
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateToken, startHttpServer, tokenProblem } from '../../mcp-server/http.ts';
import { createSharedState } from '../../mcp-server/server.ts';
import type { Workspace } from '../../tools/workspace.ts';
import { TOOLS } from '../../tools/index.ts';
import { data, httpClient, isError, makeModel, pair, startHttpChild, text, validCalls, type HttpChild } from './helpers.ts';

const root = mkdtempSync(join(tmpdir(), 'ns-mcp-http-'));
const TOKEN = 'test-token-0123456789abcdefghijklmnopq';
let srv: HttpChild;
let modelDir: string;

beforeAll(async () => {
  srv = await startHttpChild((modelDir = makeModel(root)), join(root, 'data'), TOKEN);
});
afterAll(async () => {
  await srv?.stop();
  rmSync(root, { recursive: true, force: true });
});

const INIT = JSON.stringify({
  jsonrpc: '2.0', id: 1, method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '0' } },
});

/** A raw POST with exactly the headers given (node:http, so Host can be forged). */
function post(headers: Record<string, string>, body = INIT): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  const url = new URL(srv.url);
  return new Promise((resolve, reject) => {
    const req = request({
      host: url.hostname, port: url.port, path: url.pathname, method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream', ...headers },
    }, (res) => {
      let data = '';
      res.on('data', (d) => (data += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: data }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('Streamable HTTP', () => {
  it('binds to 127.0.0.1', () => {
    expect(srv.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/mcp$/);
  });

  it('refuses requests without the bearer token (401)', async () => {
    const none = await post({});
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toContain('Bearer');
    expect(JSON.parse(none.body).error.message).toContain('Unauthorized');
    const wrong = await post({ Authorization: 'Bearer not-the-token' });
    expect(wrong.status).toBe(401);
    const scheme = await post({ Authorization: `Basic ${TOKEN}` });
    expect(scheme.status).toBe(401);
  });

  it('refuses a foreign Origin or Host even with the token (403, DNS rebinding)', async () => {
    const auth = { Authorization: `Bearer ${TOKEN}` };
    const origin = await post({ ...auth, Origin: 'http://evil.example' });
    expect(origin.status).toBe(403);
    expect(JSON.parse(origin.body).error.message).toContain('Origin');
    const host = await post({ ...auth, Host: 'evil.example' });
    expect(host.status).toBe(403);
    expect(JSON.parse(host.body).error.message).toContain('Host');
    const port = new URL(srv.url).port;
    const ok = await post({ ...auth, Origin: `http://localhost:${port}` });
    expect(ok.status).toBe(200);
  });

  it('refuses oversized and malformed bodies with the limit named', async () => {
    const auth = { Authorization: `Bearer ${TOKEN}` };
    const big = await post(auth, JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { pad: 'x'.repeat(1_100_000) } }));
    expect(big.status).toBe(413);
    expect(JSON.parse(big.body).error.message).toContain('maxRequestBytes');
    const bad = await post(auth, '{not json');
    expect(bad.status).toBe(400);
  });

  it('serves tools to a client with the token', async () => {
    const client = await httpClient(srv.url, TOKEN);
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name)).toContain('patch_activations');
    const info = await client.callTool({ name: 'model_info', arguments: {} });
    expect((info.structuredContent as { modelId: string }).modelId).toBe('model');
    expect(text(info)).toContain('modelId: model');
    await client.close();
  });

  it('every tool answers a valid call with structuredContent valid against its outputSchema', async () => {
    const client = await httpClient(srv.url, TOKEN);
    const { tools } = await client.listTools();
    expect(tools.every((t) => t.outputSchema?.type === 'object')).toBe(true);
    const calls = validCalls(modelDir);
    expect(calls.map(([n]) => n).sort()).toEqual(TOOLS.map((t) => t.name).sort());
    for (const [name, args] of calls) {
      // The SDK client checks structuredContent against the outputSchema it listed (and throws when it does not match).
      const r = await client.callTool({ name, arguments: args });
      expect(isError(r), `${name}: ${text(r).slice(0, 400)}`).toBe(false);
      expect(Object.keys(data(r)).length, name).toBeGreaterThan(0);
    }
    await client.close();
  });

  it('two clients at once share the model safely (calls are queued)', async () => {
    const [a, b] = await Promise.all([httpClient(srv.url, TOKEN), httpClient(srv.url, TOKEN)]);
    const { clean, corrupted } = pair(9, 4);
    const args = { clean: [clean], corrupted: [corrupted], target: 'w2', distractor: 'w3', site: 'head' };
    const grid = (r: unknown) => data(r).grid;
    const [ra, rb, rc] = await Promise.all([
      a.callTool({ name: 'patch_activations', arguments: args }),
      b.callTool({ name: 'patch_activations', arguments: args }),
      b.callTool({ name: 'capture_activations', arguments: { prompts: [clean, corrupted], hooks: ['blocks.1.attn.hook_pattern'] } }),
    ]);
    expect(isError(ra), text(ra)).toBe(false);
    expect(isError(rb), text(rb)).toBe(false);
    expect(isError(rc), text(rc)).toBe(false);
    expect(grid(ra)).toEqual(grid(rb));
    expect(grid(ra).rows.labels).toHaveLength(3);
    expect(grid(ra).cols).toEqual({ name: 'head', labels: ['H0', 'H1', 'H2', 'H3'] });
    // One client leaving does not disturb the other.
    await a.close();
    const again = await b.callTool({ name: 'tokenize', arguments: { text: 'w5 w6' } });
    expect(data(again).tokens[1]).toMatchObject({ id: 7, text: 'w6' });
    await b.close();
  });
});

describe('Streamable HTTP in process', () => {
  it('accepts the token in the path only when asked to, and reports a workspace that failed to open as tool errors', async () => {
    const shared = createSharedState(Promise.reject(new Error('no such model directory /nowhere')) as Promise<Workspace>, { log: () => undefined });
    for (const pathToken of [false, true]) {
      const srv = await startHttpServer(shared, { port: 0, token: TOKEN, pathToken });
      try {
        const res = await fetch(`${srv.url}/${TOKEN}`, {
          method: 'POST', body: INIT, headers: { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream' },
        });
        expect(res.status).toBe(pathToken ? 200 : 401);
        await res.body?.cancel();
        const wrong = await fetch(`${srv.url}/not-the-token-at-all`, { method: 'POST', body: INIT, headers: { 'Content-Type': 'application/json' } });
        expect(wrong.status).toBe(401);
        if (pathToken) {
          const { Client } = await import('@modelcontextprotocol/sdk/client/index.js');
          const { StreamableHTTPClientTransport } = await import('@modelcontextprotocol/sdk/client/streamableHttp.js');
          const client = new Client({ name: 'path', version: '0' });
          await client.connect(new StreamableHTTPClientTransport(new URL(`${srv.url}/${TOKEN}`)));
          expect((await client.listTools()).tools.length).toBeGreaterThan(5);
          const r = await client.callTool({ name: 'model_info', arguments: {} });
          expect(isError(r)).toBe(true);
          expect(text(r)).toContain('could not be opened');
          expect(text(r)).toContain('/nowhere');
          await client.close();
        }
      } finally {
        await srv.close();
      }
    }
  });

  it('answers a malformed path with 400, with or without --path-token', async () => {
    const shared = createSharedState(Promise.reject(new Error('unused')) as Promise<Workspace>, { log: () => undefined });
    for (const pathToken of [false, true]) {
      const srv = await startHttpServer(shared, { port: 0, token: TOKEN, pathToken });
      try {
        for (const bad of ['/mcp/%ZZ', '/mcp/%E0%A4%A', '/%']) {
          const res = await fetch(`http://127.0.0.1:${srv.port}${bad}`, { method: 'POST', body: INIT, headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${TOKEN}` } });
          expect(res.status, bad).toBe(400);
          expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(/malformed \(invalid percent-encoding\)/);
        }
      } finally {
        await srv.close();
      }
    }
  });

  it('refuses tokens with spaces, short, or trivially repetitive ones, and accepts generated ones', async () => {
    const shared = createSharedState(Promise.reject(new Error('unused')) as Promise<Workspace>, { log: () => undefined });
    const cases: [string, RegExp][] = [
      ['correct horse battery staple and more words', /contains spaces/],
      ['a'.repeat(16), /has 16 characters/],
      ['a'.repeat(64), /only 1 different characters/],
      ['abcdefghij'.repeat(4), /short pattern repeated/],
      ['tok\u00e9n-0123456789abcdefghijklmnopqrstuvwxyz', /not printable ASCII/],
    ];
    for (const [token, why] of cases) {
      expect(tokenProblem(token), token).toMatch(why);
      await expect(startHttpServer(shared, { port: 0, token })).rejects.toThrow(/the bearer token is refused: .*at least 32 printable ASCII characters/);
    }
    for (let i = 0; i < 20; i++) expect(tokenProblem(generateToken())).toBeNull();
    expect(tokenProblem(TOKEN)).toBeNull();
  });
});
