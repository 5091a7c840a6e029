// Streamable HTTP for MCP clients that do not spawn processes: bound to 127.0.0.1, every request
// needs the bearer token, and the Host and Origin headers are checked against DNS rebinding (a web
// page cannot reach the server through a name that resolves to 127.0.0.1). One MCP session per
// client; all sessions share the workspace and its queue.
import { randomBytes, randomUUID, timingSafeEqual, createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import { LIMITS } from '../tools/limits.ts';
import { createMcpServer, type SharedState } from './server.ts';

export interface HttpOptions {
  /** 0 picks a free port. */
  port: number;
  /** Interface to bind (default 127.0.0.1). */
  host?: string;
  /** Bearer token; generated when absent. */
  token?: string;
  /** Extra Host header values accepted (e.g. a tunnel's host name), besides 127.0.0.1/localhost at the port. */
  allowedHosts?: string[];
  /** Extra Origin values accepted (e.g. "https://chatgpt.com"), besides http://127.0.0.1/localhost at the port. */
  allowedOrigins?: string[];
  /** Also accept the token as a path segment, /mcp/<token>, for clients that cannot send headers
   *  (ChatGPT connectors). The URL is then a password: off unless asked for. */
  pathToken?: boolean;
}

export interface HttpServerHandle {
  url: string;
  port: number;
  token: string;
  server: Server;
  close: () => Promise<void>;
}

export const generateToken = () => randomBytes(24).toString('base64url');

export const MIN_TOKEN_CHARS = 32;
export const TOKEN_RULE = `at least ${MIN_TOKEN_CHARS} printable ASCII characters without spaces, not a short pattern repeated, with at least 10 different characters (leave --token and NEUROSCOPE_TOKEN unset to have one generated)`;

/**
 * Why a bearer token is unusable, or null when it is fine. A token with spaces could never
 * authenticate (the header parser splits on them); a short or repetitive one is guessable.
 */
export function tokenProblem(token: string): string | null {
  if (!/^[\x21-\x7e]*$/.test(token)) return 'it contains spaces or characters that are not printable ASCII';
  if (token.length < MIN_TOKEN_CHARS) return `it has ${token.length} characters`;
  if (new Set(token).size < 10) return `it uses only ${new Set(token).size} different characters`;
  if (/^(.+?)\1+$/.test(token)) return 'it is a short pattern repeated';
  return null;
}

/** Open HTTP sessions at most. */
export const MAX_SESSIONS = 32;

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Constant-time comparison (of digests, so lengths do not leak either). */
const sameSecret = (a: string, b: string) => timingSafeEqual(digest(a), digest(b));

function tokenMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return !!m && sameSecret(m[1], token);
}

function sendJsonRpcError(res: ServerResponse, status: number, message: string, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  res.writeHead(status, { 'Content-Type': 'application/json', ...headers });
  res.end(JSON.stringify({ jsonrpc: '2.0', error: { code: status === 401 || status === 403 ? -32001 : -32000, message }, id: null }));
}

/** The body as text; over `limit` bytes it is read to the end and dropped (so the client gets the
 *  413 instead of a reset connection), and a body over 8 x limit closes the connection. */
function readBody(req: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const tooLarge = () => new RangeError(`request body is over ${limit} bytes (limit maxRequestBytes in tools/limits.ts)`);
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > 8 * limit) {
        reject(tooLarge());
        req.destroy();
      } else if (size <= limit) chunks.push(c);
    });
    req.on('end', () => (size > limit ? reject(tooLarge()) : resolve(Buffer.concat(chunks).toString('utf8'))));
    req.on('error', reject);
  });
}

export async function startHttpServer(shared: SharedState, opts: HttpOptions): Promise<HttpServerHandle> {
  const host = opts.host ?? '127.0.0.1';
  const token = opts.token ?? generateToken();
  const problem = tokenProblem(token);
  if (problem) throw new Error(`the bearer token is refused: ${problem}. Use ${TOKEN_RULE}.`);
  const transports = new Map<string, StreamableHTTPServerTransport>();
  let port = opts.port;
  const allowedHosts = () => new Set([`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`, ...(opts.allowedHosts ?? []).map((h) => h.toLowerCase())]);
  const allowedOrigins = () => new Set([`http://127.0.0.1:${port}`, `http://localhost:${port}`, `http://[::1]:${port}`, ...(opts.allowedOrigins ?? []).map((o) => o.toLowerCase().replace(/\/$/, ''))]);

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    // 1. DNS rebinding: the Host must be ours, and a browser Origin must be ours.
    const hostHeader = (req.headers.host ?? '').toLowerCase();
    if (!allowedHosts().has(hostHeader)) {
      sendJsonRpcError(res, 403, `Forbidden: Host "${req.headers.host ?? ''}" is not allowed (DNS rebinding protection); connect to http://127.0.0.1:${port}/mcp or start the server with --allow-host`);
      return;
    }
    const origin = req.headers.origin;
    if (origin !== undefined && !allowedOrigins().has(origin.toLowerCase())) {
      sendJsonRpcError(res, 403, `Forbidden: Origin "${origin}" is not allowed (DNS rebinding protection); start the server with --allow-origin to admit it`);
      return;
    }
    // 2. Bearer token (or, when enabled, the token as the path segment after /mcp/).
    // A malformed path (bad percent-encoding such as /mcp/%ZZ) is the client's error: 400, not 500.
    let path: string;
    let pathSegment: string | null = null;
    try {
      path = new URL(req.url ?? '/', `http://${hostHeader}`).pathname;
      decodeURIComponent(path); // throws on bad percent-encoding anywhere in the path
      if (path.startsWith('/mcp/')) pathSegment = decodeURIComponent(path.slice(5));
    } catch {
      sendJsonRpcError(res, 400, `Bad request: the path ${JSON.stringify((req.url ?? '').slice(0, 100))} is malformed (invalid percent-encoding); the MCP endpoint is /mcp`);
      return;
    }
    let authorised = tokenMatches(req.headers.authorization, token);
    if (!authorised && opts.pathToken && pathSegment !== null && sameSecret(pathSegment, token)) {
      authorised = true;
      path = '/mcp';
    }
    if (!authorised) {
      sendJsonRpcError(res, 401, 'Unauthorized: send "Authorization: Bearer <token>" with the token the server printed (or set with --token / NEUROSCOPE_TOKEN)', {
        'WWW-Authenticate': 'Bearer realm="neuroscope"',
      });
      return;
    }
    if (path !== '/mcp') {
      sendJsonRpcError(res, 404, `Not found: the MCP endpoint is /mcp`);
      return;
    }
    const sessionId = req.headers['mcp-session-id'];
    const sid = Array.isArray(sessionId) ? sessionId[0] : sessionId;
    if (req.method === 'POST') {
      let body: unknown;
      try {
        const text = await readBody(req, LIMITS.maxRequestBytes);
        body = JSON.parse(text);
      } catch (e) {
        if (e instanceof RangeError) sendJsonRpcError(res, 413, `Payload too large: ${e.message}`);
        else sendJsonRpcError(res, 400, `Parse error: the request body is not valid JSON (${(e as Error).message})`);
        return;
      }
      if (sid) {
        const t = transports.get(sid);
        if (!t) {
          sendJsonRpcError(res, 404, `Session ${sid} not found (it ended or the server restarted); initialize a new session`);
          return;
        }
        await t.handleRequest(req, res, body);
        return;
      }
      if (!isInitializeRequest(body)) {
        sendJsonRpcError(res, 400, 'Bad request: no mcp-session-id header; the first request of a session must be initialize');
        return;
      }
      // Clients that vanish without ending their session are dropped, oldest first, past a cap.
      while (transports.size >= MAX_SESSIONS) {
        const [oldest, t] = transports.entries().next().value as [string, StreamableHTTPServerTransport];
        transports.delete(oldest);
        shared.log(`http session ${oldest} dropped (more than ${MAX_SESSIONS} open)`);
        await t.close().catch(() => undefined);
      }
      const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        onsessioninitialized: (id) => {
          transports.set(id, transport);
          shared.log(`http session ${id} opened (${transports.size} open)`);
        },
      });
      transport.onclose = () => {
        if (transport.sessionId && transports.delete(transport.sessionId)) shared.log(`http session ${transport.sessionId} closed`);
      };
      const mcp = createMcpServer(shared);
      await mcp.connect(transport);
      await transport.handleRequest(req, res, body);
      return;
    }
    if (req.method === 'GET' || req.method === 'DELETE') {
      const t = sid ? transports.get(sid) : undefined;
      if (!t) {
        sendJsonRpcError(res, sid ? 404 : 400, sid ? `Session ${sid} not found` : 'Bad request: missing mcp-session-id header');
        return;
      }
      await t.handleRequest(req, res);
      return;
    }
    sendJsonRpcError(res, 405, `Method ${req.method} not allowed; use POST, GET or DELETE on /mcp`, { Allow: 'POST, GET, DELETE' });
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((e) => {
      shared.log(`http request failed: ${(e as Error).stack ?? e}`);
      sendJsonRpcError(res, 500, `Internal error: ${(e as Error).message}`);
    });
  });
  // Idle keep-alive sockets outlive the clients' own keep-alive (undici, the SDK's fetch, closes after
  // 4 s): with Node's 5 s default a busy machine lets the server close a socket the client is just
  // reusing, and the client sees "other side closed".
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  port = (server.address() as AddressInfo).port;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}/mcp`;
  return {
    url,
    port,
    token,
    server,
    close: async () => {
      await Promise.allSettled([...transports.values()].map((t) => t.close()));
      transports.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
