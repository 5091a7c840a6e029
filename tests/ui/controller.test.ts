// The chat's behaviour without a terminal: slash commands through the in-process MCP server, with
// cards, heatmaps, clear errors and the session log; messages without an LLM; /export.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { investigate } from '../../agent/investigate/index.ts';
import { McpToolbox } from '../../agent/mcp.ts';
import { readSession } from '../../agent/transcripts/session.ts';
import { connectInProcess, type Connection } from '../../agent/ui/connect.ts';
import { ChatController, type ChatItem } from '../../agent/ui/controller.ts';
import { gridsOf } from '../../agent/ui/results.ts';
import { linesText } from '../../agent/ui/text.ts';
import { toolCardLines } from '../../agent/ui/ToolCard.tsx';

const root = mkdtempSync(join(tmpdir(), 'ns-chat-'));
let conn: Connection;
let ctl: ChatController;

beforeAll(async () => {
  conn = await connectInProcess({ dataDir: join(root, 'data'), threads: 1 });
  ctl = new ChatController({ conn, toolbox: McpToolbox.fromClient(conn.client, 'in-process'), transcriptsDir: join(root, 'transcripts') });
  await ctl.init();
});

afterAll(async () => {
  await conn?.close();
  rmSync(root, { recursive: true, force: true });
});

const items = () => ctl.getSnapshot().items;
const last = <K extends ChatItem['kind']>(kind: K) => items().filter((i) => i.kind === kind).pop() as Extract<ChatItem, { kind: K }>;

it('opens the built-in model and shows it in the header', () => {
  const s = ctl.getSnapshot().status;
  expect(s.workspace).toBe('ready');
  expect(s.model).toBe('tiny-s-seed0');
  expect(s.llm).toMatch(/^none/);
});

it('/patch alone runs IOI head patching on the built-in prompts and draws the layer x head grid', async () => {
  await ctl.submit('/patch');
  const card = last('tool').call;
  expect(card.name).toBe('patch_activations');
  expect(card.status).toBe('done');
  expect(card.args).toMatchObject({ site: 'head' });
  const grid = (card.grids ?? gridsOf(card.structured))[0];
  expect(grid.rowLabels).toEqual(['L0', 'L1', 'L2', 'L3']);
  expect(grid.colLabels).toEqual(['H0', 'H1', 'H2', 'H3', 'H4', 'H5', 'H6', 'H7']);
  const manifest = JSON.parse(readFileSync(join(ctl.getSnapshot().status.modelDir!, 'manifest.json'), 'utf8'));
  const [L, H] = (manifest.roles['ioi.name_mover'][0] as string).match(/\d+/g)!.map(Number);
  const max = Math.max(...grid.values.flat().map((v) => Math.abs(v ?? 0)));
  expect(grid.values[L][H]).toBe(max);
  expect(linesText(toolCardLines(card, 80))).toContain('layer ↓ H0 H1 H2');
  expect(ctl.memory.lastPatchTop?.[0]).toBe(`L${L}.H${H}`);
});

it('/patch over the residual stream labels positions with tokens; /ablate defaults to the heads /patch found', async () => {
  await ctl.submit('/patch site=resid_pre layers=0,3');
  const g = last('tool').call.grids![0];
  expect(g.rowLabels).toEqual(['L0', 'L3']);
  expect(g.colLabels[0]).toMatch(/^0:\S+/);
  expect(g.colAxis).toBe('token');
  await ctl.submit('/ablate');
  expect(last('tool').call).toMatchObject({ name: 'ablate', status: 'done' });
  expect((last('tool').call.args as { components: string[] }).components[0]).toBe(ctl.memory.lastPatchTop![0]);
});

it('explains bad arguments, unknown commands and failed tools', async () => {
  await ctl.submit('/patch layerz=1');
  expect(last('note')).toMatchObject({ tone: 'error' });
  expect(last('note').text).toContain('/patch does not take "layerz"');
  await ctl.submit('/patch clean="When Mary and John went"');
  expect(last('note').text).toContain('give both clean="..." and corrupted="..."');
  await ctl.submit('/frobnicate');
  expect(last('note').text).toContain('unknown command /frobnicate');
  await ctl.submit('/patch site=everywhere');
  const bad = last('tool').call;
  expect(bad.status).toBe('error');
  expect(bad.error).toMatch(/site/);
  await ctl.submit('/sql DELETE FROM runs');
  expect(last('tool').call.status).toBe('error');
  // A tool error that names a tool the chat has no command for says how to call it here.
  await ctl.submit('/sql SELECT nope FROM runs');
  expect(last('tool').call.error).toMatch(/Call describe_store[\s\S]*In the chat: \/tool describe_store \{…\} runs describe_store\.$/);
  // A hook filter that matches nothing is an error naming the hook parts, not an empty table.
  await ctl.submit('/hooks zzz');
  expect(last('tool').call).toMatchObject({ name: 'list_hooks', status: 'error' });
  expect(last('tool').call.error).toMatch(/no hook name contains "zzz"\. Hook names are blocks\.L\.<part> for layer L, with parts hook_resid_pre, .*attn\.hook_z, .*; and hook_embed/);
  await ctl.submit('/hooks hook_resid_pots');
  expect(last('tool').call.error).toContain('nearest: hook_resid_post');
  await ctl.submit('What does L3.H2 do?');
  expect(last('note').text).toContain('No language model is configured');
  // Without an LLM, /investigate still works: the reply says so, with the question ready to paste.
  expect(last('note').text).toContain('`/investigate What does L3.H2 do?`');
  expect(last('note').text).toContain('IOI (indirect object identification), induction');
});

it('/tool lists and calls any tool; grids are titled by tool, value and axes', async () => {
  await ctl.submit('/tool');
  expect(last('note').text).toMatch(/- `describe_store`: Describe the activation store/);
  await ctl.submit('/tool describe_stor');
  expect(last('note').text).toContain('no tool "describe_stor"; did you mean describe_store?');
  await ctl.submit('/tool list_hooks {"filter": "hook_z"}');
  expect(last('tool').call).toMatchObject({ name: 'list_hooks', status: 'done', args: { filter: 'hook_z' } });
  await ctl.submit('/tool path_patch senders=[0] receivers=["L1.H0"]');
  expect(last('tool').call.status).not.toBe('running');
  await ctl.submit('/patch');
  const g = last('tool').call.grids![0];
  expect(g.title).toBe('patch_activations: normalised effects (layer × head)');
  expect(g.value).toBe('normalised effects');
});

it('shows one-row and two-row results: /findings with one finding, /probe over two layers', async () => {
  await ctl.tool('write_finding', { name: 'only-one', markdown: '# Only one\n\nA single finding.' });
  await ctl.submit('/findings');
  const findings = linesText(toolCardLines(last('tool').call, 100));
  expect(findings).toContain('findings (1 row)');
  expect(findings).toMatch(/│ only-one +│ Only one/);
  await ctl.submit('/probe layers=1,2');
  const probe = last('tool').call;
  expect(probe).toMatchObject({ name: 'train_probe', status: 'done' });
  const text = linesText(toolCardLines(probe, 120));
  expect(text).toContain('layers (2 rows)');
  expect(text).toMatch(/│ +1 │ blocks\.1\.hook_resid_post/);
  expect(text).toMatch(/│ +2 │ blocks\.2\.hook_resid_post/);
});

it('/attn draws a 40-token attention pattern as a 40 x 40 heatmap', async () => {
  const info = await ctl.modelInfo();
  const words = JSON.parse(readFileSync(join(info.dir, 'manifest.json'), 'utf8')).tasks.induction.examples[0].prompt.split(' ') as string[];
  const prompt = Array.from({ length: 40 }, (_, i) => words[i % words.length]).join(' ');
  await ctl.submit(`/attn head=L1.H0 tokens=40 prompt="${prompt}"`);
  const card = last('tool').call;
  expect(card).toMatchObject({ name: 'attention_patterns', status: 'done' });
  const g = gridsOf(card.structured)[0];
  expect(g.rowAxis).toBe('query');
  expect(g.rowLabels).toHaveLength(40);
  expect(g.colLabels).toHaveLength(40);
  expect(g.values[39].filter((v) => v !== null)).toHaveLength(40);
  const drawn = linesText(toolCardLines(card, 120)).split('\n');
  // Every query row is drawn, labelled with its token.
  for (const label of [g.rowLabels[0], g.rowLabels[39]]) expect(drawn.some((l) => l.includes(label.slice(0, 8)))).toBe(true);
});

it('/sql shows tables; /export writes the session as Markdown; the session log has every turn', async () => {
  await ctl.submit("/sql SELECT kind, count(*) AS n FROM experiments GROUP BY kind ORDER BY kind");
  const sql = last('tool').call;
  expect(sql.status).toBe('done');
  expect(linesText(toolCardLines(sql, 80))).toContain('activation_patching');
  await ctl.submit('/export');
  const path = /`([^`]+\.md)`/.exec(last('note').text)![1];
  const md = readFileSync(path, 'utf8');
  expect(md).toContain('## 1. /patch');
  expect(md).toContain('## 2. /patch site=resid_pre layers=0,3');
  expect(md).toContain('/patch does not take');
  expect(md.match(/<details>/g)!.length).toBeGreaterThanOrEqual(5);
  const s = readSession(ctl.log.file);
  expect(s.events.filter((e) => e.type === 'user').length).toBeGreaterThanOrEqual(9);
  expect(s.events.some((e) => e.type === 'tool_end' && e.status === 'error')).toBe(true);
  await ctl.submit('/clear');
  expect(items().map((i) => i.kind)).toEqual(['banner']);
  expect(ctl.getSnapshot().epoch).toBe(1);
});

it('/capture of a long prompt draws every layer and position: positions averaged in bins under the row limit', async () => {
  // 4 layers x 2,400 tokens = 9,600 rows, past the 2,000-row SQL limit: bins of 5 positions
  // (the rows come back whole as structured content, so only the SQL limit counts).
  const prompt = Array.from({ length: 2400 }, (_, i) => (i % 2 ? 'store' : 'the')).join(' ');
  await ctl.submit(`/capture prompt="${prompt}"`);
  const g = last('tool').call.grids![0];
  expect(g.title).toBe('residual stream norm (hook_resid_post; mean of 5 positions per column)');
  expect(g.rowLabels).toEqual(['L0', 'L1', 'L2', 'L3']);
  expect(g.colLabels).toHaveLength(480);
  expect(g.values.flat().every((v) => v !== null && Number.isFinite(v))).toBe(true);
  expect(g.max!).toBeGreaterThan(g.min!);
}, 120_000);

it('/investigate without an LLM shows each protocol call as a card with its typed result (heatmaps and tables, not the text channel)', async () => {
  const toolbox = await McpToolbox.fromClient(conn.client, 'in-process');
  const inv = new ChatController({
    conn, toolbox, transcriptsDir: join(root, 'transcripts'),
    investigator: (question, o) => investigate({ question, toolbox, dataDir: conn.dataDir, llm: null, signal: o.signal, onEvent: o.onEvent }),
  });
  await inv.init();
  await inv.submit('/investigate Which heads carry IOI?');
  const cards = inv.getSnapshot().items.filter((i): i is Extract<ChatItem, { kind: 'tool' }> => i.kind === 'tool').map((i) => i.call);
  expect(cards.length).toBeGreaterThanOrEqual(5);
  expect(cards.every((c) => c.status === 'done' && c.structured !== undefined)).toBe(true);
  // Before, these cards printed the text channel at 80 columns: every run id's SQL and "grid (layer x head, 4 x 8):" with no grid.
  const heads = cards.find((c) => c.name === 'patch_activations' && (c.args as { site?: string }).site === 'head')!;
  const text = linesText(toolCardLines(heads, 76));
  expect(text).toContain('layer ↓ H0 H1 H2');
  expect(text).not.toContain('each with its prompt');
}, 120_000);
