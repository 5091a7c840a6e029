// Without an LLM, `investigate` runs the built-in protocol for the question's phenomenon through the
// MCP tools and writes a finding that says no LLM took part. On gpt-oss-tiny (tiny-s, a seed the
// protocols were not developed on) the IOI finding must name the planted name mover; the manifest's
// roles are read here, by the test, and nowhere in agent/.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTinyModel } from '../../engine/tiny/index.ts';
import { investigate, type InvestigationEvent } from '../../agent/investigate/index.ts';
import { McpToolbox } from '../../agent/mcp.ts';
import { matchPhenomenon } from '../../agent/protocols/index.ts';
import { openWorkspace, type Workspace } from '../../tools/workspace.ts';

const root = mkdtempSync(join(tmpdir(), 'ns-agent-protocol-'));
const dataDir = join(root, 'data');
let ws: Workspace;
let toolbox: McpToolbox;
let roles: Record<string, string[]>;

beforeAll(async () => {
  const manifest = buildTinyModel('tiny-s', 31, join(root, 'model'));
  roles = manifest.roles as unknown as Record<string, string[]>;
  ws = await openWorkspace(join(root, 'model'), dataDir, { threads: 1 });
  toolbox = await McpToolbox.connect({ kind: 'in-process', workspace: ws });
});

afterAll(async () => {
  await toolbox?.close();
  await ws?.close();
  rmSync(root, { recursive: true, force: true });
});

describe('built-in protocols (no LLM)', () => {
  it('recognises the phenomenon of a question', () => {
    expect(matchPhenomenon('Which heads carry IOI in this model?')).toBe('ioi');
    expect(matchPhenomenon('Find the name movers for indirect object identification')).toBe('ioi');
    expect(matchPhenomenon('Is there an induction head?')).toBe('induction');
    expect(matchPhenomenon('How does the model predict the next number in 3 4 5 6?')).toBe('successor');
    expect(matchPhenomenon('Can we steer the sentiment from negative to positive?')).toBe('sentiment');
    expect(matchPhenomenon('Are there polysemantic neurons shared by math and code?')).toBe('entanglement');
    expect(matchPhenomenon('What is the capital of France?')).toBeNull();
  });

  it('refuses a question no protocol covers, saying what would work', async () => {
    await expect(investigate({ question: 'What is the capital of France?', toolbox, dataDir })).rejects.toThrow(/no LLM is configured.*IOI.*induction/s);
  });

  it('IOI: runs the protocol through MCP and the finding names the planted name mover', async () => {
    const events: InvestigationEvent[] = [];
    const r = await investigate({ question: 'Which heads carry IOI (indirect object identification) in this model?', toolbox, dataDir, onEvent: (e) => events.push(e) });
    expect(r).toMatchObject({ mode: 'protocol', status: 'concluded', phenomenon: 'ioi', usage: null });
    expect(r.message).toMatch(/^No LLM took part/);
    const md = readFileSync(join(dataDir, 'findings', `${r.report!.name}.md`), 'utf8');
    expect(md).toContain('**No LLM took part in this investigation.**');
    const conclusion = md.split('## Conclusion')[1].split('##')[0];
    const movers = roles['ioi.name_mover'];
    expect(movers.length).toBeGreaterThan(0);
    for (const h of movers) expect(conclusion).toContain(`**${h}**`);
    expect(conclusion).toContain(`**${roles['ioi.s_inhibition'][0]}**`);
    // Every experiment it cites is in the store, and so is the finding.
    const ids = [...new Set(md.match(/exp_[a-z0-9]+/g) ?? [])];
    expect(ids.length).toBeGreaterThanOrEqual(5);
    for (const id of ids) expect(await ws.ctx.store.getExperiment(id), id).toBeTruthy();
    const stored = (await ws.ctx.store.listFindings({ limit: 10 })).find((f) => f.path?.endsWith(`${r.report!.name}.md`));
    expect(stored?.experimentIds.sort()).toEqual(ids.sort());
    // The tools were MCP calls, with the patching, path patching and ablation the protocol needs.
    const tools = events.filter((e) => e.type === 'tool-end').map((e) => (e as { name: string }).name);
    expect(tools).toEqual(expect.arrayContaining(['patch_activations', 'path_patch', 'ablate', 'query_activations']));
    expect(events.some((e) => e.type === 'progress')).toBe(true);
  });

  it('successor and entanglement protocols find the planted expert and polysemantic neuron', async () => {
    const s = await investigate({ question: 'Which expert computes the successor of a number?', toolbox, dataDir });
    expect(s.phenomenon).toBe('successor');
    const sm = readFileSync(join(dataDir, 'findings', `${s.report!.name}.md`), 'utf8');
    expect(sm.split('## Conclusion')[1]).toContain(`**${roles['successor.expert'][0]}**`);
    const e = await investigate({ question: 'Are there polysemantic neurons that fire on both math and code?', toolbox, dataDir });
    const em = readFileSync(join(dataDir, 'findings', `${e.report!.name}.md`), 'utf8');
    expect(em.split('## Conclusion')[1]).toContain(`**${roles['entanglement.polysemantic'][0]}**`);
  });

  it('stops when the tool budget is spent and says so', async () => {
    const r = await investigate({ question: 'steer the sentiment', toolbox, dataDir, budget: 2 });
    const md = readFileSync(join(dataDir, 'findings', `${r.report!.name}.md`), 'utf8');
    expect(md).toContain('**Stopped early**');
    expect(md).toContain('No conclusion: the tool-call budget (2) is spent');
    expect(r.toolCalls).toBe(2);
  });
});
