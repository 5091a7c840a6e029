// Without an LLM, `investigate` runs the built-in protocol for the question's phenomenon through the
// MCP tools and writes a finding that says no LLM took part. On gpt-oss-tiny (tiny-s, a seed the
// protocols were not developed on) the IOI finding must name the planted name mover, and the
// attention and circuit-discovery steps the planted roles; the manifest's roles are read here, by
// the test, and nowhere in agent/.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTinyModel } from '../../engine/tiny/index.ts';
import { investigate, type InvestigationEvent } from '../../agent/investigate/index.ts';
import { McpToolbox } from '../../agent/mcp.ts';
import { matchPhenomenon, runProtocol } from '../../agent/protocols/index.ts';
import { openWorkspace, type Workspace } from '../../tools/workspace.ts';
import { inProcessPort } from '../../tools/suite/port.ts';
import { loadSuitePrompts } from '../../tools/suite/prompts.ts';
import { ioiCircuit, ioiExamples, type Agreement } from '../../tools/suite/steps.ts';
import { sentimentSteering } from '../../tools/suite/steering-steps.ts';
import { domainNeurons } from '../../tools/suite/entanglement-steps.ts';

const root = mkdtempSync(join(tmpdir(), 'ns-agent-protocol-'));
const dataDir = join(root, 'data');
let ws: Workspace;
let toolbox: McpToolbox;
let roles: Record<string, string[]>;

beforeAll(async () => {
  const manifest = buildTinyModel('tiny-s', 31, join(root, 'model'), 'clean');
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
    expect(tools).toEqual(expect.arrayContaining(['patch_activations', 'path_patch', 'ablate', 'attention_patterns', 'find_circuit', 'query_activations']));
    expect(events.some((e) => e.type === 'progress')).toBe(true);
  });

  it('IOI: attention patterns and find_circuit agree with the planted roles', async () => {
    const { report, markdown } = await runProtocol({ toolbox, phenomenon: 'ioi', question: 'Which heads carry IOI?', investigationId: 'test-ioi-found' });
    const f = report.found as {
      circuit: string[]; circuitShare: number; circuitSize: number; circuitCandidates: number; circuitContainsNameMovers: boolean;
      duplicateTokenHeads: string[]; previousTokenHeads: string[]; moversAttendToIO: boolean;
      lastTokenAttention: { head: string; io: number; s1: number; s2: number; sink: number; mostAttended: string; mostAttendedIn: number; prompts: number }[];
      atpAgreement: { ioSwap: Agreement; abc: Agreement };
    };
    const movers = roles['ioi.name_mover'];
    // The circuit is the suite's: the same step (tools/suite/steps.ts) run in process on the same prompts finds the same heads.
    const suite = await ioiCircuit(inProcessPort(ws.ctx), ioiExamples(loadSuitePrompts(join(root, 'model')).ioi), 32);
    expect(f.circuit).toEqual(suite.result.circuit);
    // With both names replaced every planted IOI head is needed, the previous-token head at the first mention too.
    expect([...f.circuit].sort()).toEqual(['ioi.previous_token', 'ioi.duplicate_token', 'ioi.s_inhibition', 'ioi.name_mover'].flatMap((k) => roles[k]).sort());
    // Attribution patching ran first over every head and agrees with the patching that confirmed it (IO swapped).
    expect(f.atpAgreement.ioSwap.sites).toBe(32);
    expect(f.atpAgreement.ioSwap.pearson).toBeGreaterThanOrEqual(0.8);
    expect(f.atpAgreement.ioSwap.patchBestRankInAtp).toBeLessThanOrEqual(3);
    expect(markdown).toContain('### Attribution patching first');
    console.log(`IOI protocol (tiny-s seed 31 clean): circuit ${f.circuit.join(', ')}; AtP vs patching: IO swapped Pearson ${f.atpAgreement.ioSwap.pearson.toFixed(4)}, top-${f.atpAgreement.ioSwap.k} overlap ${f.atpAgreement.ioSwap.topOverlap}; ABC Pearson ${f.atpAgreement.abc.pearson.toFixed(4)}, top-${f.atpAgreement.abc.k} overlap ${f.atpAgreement.abc.topOverlap}, patching's top head at AtP rank ${f.atpAgreement.abc.patchBestRankInAtp}`);
    // find_circuit over all 32 heads of tiny-s: the planted name mover, S-inhibition and duplicate heads, and little else.
    expect(f.circuitCandidates).toBe(32);
    for (const h of movers) expect(f.circuit).toContain(h);
    expect(f.circuitContainsNameMovers).toBe(true);
    expect(f.circuit).toContain(roles['ioi.s_inhibition'][0]);
    expect(f.circuit).toContain(roles['ioi.duplicate_token'][0]);
    expect(f.circuitSize).toBe(f.circuit.length);
    expect(f.circuitSize).toBeLessThanOrEqual(6);
    expect(f.circuitShare).toBeGreaterThanOrEqual(0.8);
    expect(f.circuitShare).toBeLessThan(1.2);
    // Attention role scores on the clean IOI prompts.
    expect(f.duplicateTokenHeads).toEqual(roles['ioi.duplicate_token']);
    expect(f.previousTokenHeads).toContain(roles['ioi.previous_token'][0]);
    // From the last token the name mover looks at the indirect object, the S-inhibition head at the second subject mention.
    expect(f.moversAttendToIO).toBe(true);
    for (const h of movers) {
      const a = f.lastTokenAttention.find((r) => r.head === h)!;
      expect(a.prompts).toBe(8); // every prompt, read in one attention_patterns call
      expect(a.mostAttended).toBe('IO');
      expect(a.io).toBeGreaterThan(0.9);
      expect(a.s1 + a.s2).toBeLessThan(0.05);
    }
    const sInh = f.lastTokenAttention.find((r) => r.head === roles['ioi.s_inhibition'][0])!;
    expect(sInh.mostAttended).toBe('S2');
    expect(sInh.s2).toBeGreaterThan(0.9);
    // The finding shows them, and the conclusion names the circuit.
    expect(markdown).toContain('### Attention patterns');
    expect(markdown).toContain('### The circuit found by pruning');
    const conclusion = markdown.split('## Conclusion')[1].split('##')[0];
    expect(conclusion).toContain(`**${f.circuit.join(', ')}**`);
    expect(conclusion).toMatch(/which contains the name mover/);
    expect(report.experiments.filter((e) => e.tool === 'attention_patterns').length).toBe(2); // role scores, then last-token attention on every prompt in one call
    expect(report.experiments.filter((e) => e.tool === 'find_circuit').length).toBe(1);
  });

  it('induction: attention role scores name the planted induction and previous-token heads, agreeing with patching and ablation', async () => {
    const { report, markdown } = await runProtocol({ toolbox, phenomenon: 'induction', question: 'Is there an induction head?', investigationId: 'test-induction-found' });
    const f = report.found as {
      inductionHeads: string[]; previousToken: string | null; inductionByPattern: string; inductionScore: number;
      previousTokenByPattern: string; previousTokenScore: number; previousTokenHeads: string[]; patternsAgree: { inductionHead: boolean; previousToken: boolean | null };
    };
    const induction = roles['induction.induction_head'][0];
    expect(f.inductionByPattern).toBe(induction);
    expect(f.inductionScore).toBeGreaterThan(0.9);
    expect(f.inductionHeads[0]).toBe(induction);
    // tiny-s plants two previous-token heads (one for IOI, one for induction) with the same positional
    // pattern, so they tie on attention: the top one is one of them, and ablation picks the induction one.
    const planted = [...roles['ioi.previous_token'], ...roles['induction.previous_token']];
    expect(planted).toContain(f.previousTokenByPattern);
    expect(f.previousTokenScore).toBeGreaterThan(0.9);
    expect([...f.previousTokenHeads].sort()).toEqual([...planted].sort());
    expect(f.previousToken).toBe(roles['induction.previous_token'][0]);
    expect(f.patternsAgree).toEqual({ inductionHead: true, previousToken: true });
    const conclusion = markdown.split('## Conclusion')[1].split('##')[0];
    expect(conclusion).toContain(`**${induction}**`);
    expect(conclusion).toContain(`**${roles['induction.previous_token'][0]}**`);
    expect(conclusion).toContain('Attention patterns agree');
    expect(markdown).toContain('### Attention patterns');
  });

  it('successor and entanglement protocols find the planted expert and polysemantic neuron', async () => {
    const s = await investigate({ question: 'Which expert computes the successor of a number?', toolbox, dataDir });
    expect(s.phenomenon).toBe('successor');
    const sm = readFileSync(join(dataDir, 'findings', `${s.report!.name}.md`), 'utf8');
    expect(sm.split('## Conclusion')[1]).toContain(`**${roles['successor.expert'][0]}**`);
    const e = await investigate({ question: 'Are there polysemantic neurons that fire on both math and code?', toolbox, dataDir });
    const em = readFileSync(join(dataDir, 'findings', `${e.report!.name}.md`), 'utf8');
    expect(em.split('## Conclusion')[1]).toContain(`**${roles['entanglement.polysemantic'][0]}**`);
    // The suite's entanglement step, run in process on the same prompts, finds the same neurons.
    const suite = await domainNeurons(inProcessPort(ws.ctx), loadSuitePrompts(join(root, 'model')).domains);
    const { report } = await runProtocol({ toolbox, phenomenon: 'entanglement', question: 'Which neurons are shared by math and code?', investigationId: 'test-entanglement' });
    const found = report.found as { polysemantic: string; perDomain: Record<string, string[]> };
    expect(found.polysemantic).toBe(suite.poly.neuron);
    expect(found.perDomain).toEqual(Object.fromEntries(suite.names.map((d) => [d, suite.sel.perDomain[d].slice(0, 3).map((n) => n.neuron)])));
  });

  it('sentiment: the protocol runs the suite steering steps, and steering every token beats one token and the shuffled control', async () => {
    const { report, markdown } = await runProtocol({ toolbox, phenomenon: 'sentiment', question: 'Can we steer the sentiment?', investigationId: 'test-sentiment' });
    const f = report.found as { layer: number; shiftAll: number; shiftLast: number; controlShift: number; flipped: boolean };
    // The same step (tools/suite/steering-steps.ts) run in process on the same prompts gives the same numbers.
    const suite = await sentimentSteering(inProcessPort(ws.ctx), loadSuitePrompts(join(root, 'model')), ws.ctx.session.config.numLayers);
    expect(f.layer).toBe(suite.best.layer);
    expect(f.shiftAll).toBeCloseTo(suite.shiftAll, 6);
    expect(f.shiftLast).toBeCloseTo(suite.shiftLast, 6);
    expect(f.controlShift).toBeCloseTo(suite.controlShift, 6);
    expect(f.shiftAll).toBeGreaterThan(f.shiftLast);
    expect(f.shiftAll).toBeGreaterThan(Math.abs(f.controlShift));
    expect(markdown).toContain('### Control');
  });

  it('stops when the tool budget is spent and says so', async () => {
    const r = await investigate({ question: 'steer the sentiment', toolbox, dataDir, budget: 2 });
    const md = readFileSync(join(dataDir, 'findings', `${r.report!.name}.md`), 'utf8');
    expect(md).toContain('**Stopped early**');
    expect(md).toContain('No conclusion: the tool-call budget (2) is spent');
    expect(r.toolCalls).toBe(2);
  });
});
