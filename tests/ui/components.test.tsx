// The chat's pieces without a terminal: Markdown, heatmaps, tool cards and the input line, drawn
// with ink-testing-library; the tool-result reader and slash-command arguments as plain functions.
import { Text } from 'ink';
import { render } from 'ink-testing-library';
import React from 'react';
import { describe, expect, it } from 'vitest';
import { Header, StatusLine } from '../../agent/ui/App.tsx';
import { NO_LLM_LABEL } from '../../agent/ui/agent-link.ts';
import { ArgError, parseArgs, tokenize } from '../../agent/ui/args.ts';
import type { ChatStatus } from '../../agent/ui/controller.ts';
import { Heatmap, heatmapLines } from '../../agent/ui/Heatmap.tsx';
import { editorReducer, emptyEditor, handleKey, InputLine } from '../../agent/ui/InputLine.tsx';
import { Markdown } from '../../agent/ui/Lines.tsx';
import { renderMarkdown } from '../../agent/ui/markdown.ts';
import { resultView } from '../../agent/ui/results.ts';
import { linesText, strWidth } from '../../agent/ui/text.ts';
import { ToolCard, toolCardLines, type ToolCallView } from '../../agent/ui/ToolCard.tsx';

const tick = (ms = 30) => new Promise((r) => setTimeout(r, ms));
// Ink strips nothing in tests (no colour support detected), but be safe.
const plain = (s: string | undefined) => (s ?? '').replace(/\x1b\[[0-9;]*m/g, '');

// A patch_activations result as the MCP server sends it in structuredContent.
const PATCH_RESULT = {
  experimentId: 'exp_abc123',
  metric: 'logit_diff',
  clean: 9.8457,
  corrupted: -2.4e-19,
  site: 'head',
  hook: 'blocks.L.attn.hook_z',
  grid: {
    rows: { name: 'layer', labels: ['L0', 'L1', 'L2', 'L3'] },
    cols: { name: 'head', labels: ['H0', 'H1', 'H2', 'H3', 'H4', 'H5', 'H6', 'H7'] },
    values: [[0, 0, 0, 0, 0, 0, 0, 0], [0, 0.1, 0, 0, 0, 0, 0, 0], [0, 0, -0.3, 0, 0, 0, 0, 0], [0, 0, 0.98, 0, 0, 0.5, 0, 0]],
  },
  top: [{ site: 'L3.H2', effect: 0.98, value: 9.846 }, { site: 'L3.H5', effect: 0.5, value: 4.9 }, { site: 'L2.H2', effect: -0.3, value: -2.9 }],
  runIds: { clean: ['run_a1', 'run_a2'], corrupted: ['run_b1', 'run_b2'] },
  forwards: 8,
};

describe('markdown', () => {
  it('renders headings, emphasis, code, lists, quotes and tables for the terminal', () => {
    const md = [
      '# Name movers', '', 'Patching **L3.H2** restores *most* of the `logit_diff`; see [the report](report.md).', '',
      '- first point', '- second point that is long enough to wrap around the narrow width we give it', '  - nested', '1. one', '2. two', '',
      '> a quote', '', '```ts', 'const x = 1;', '```', '',
      '| site | effect |', '|---|---:|', '| L3.H2 | 0.98 |', '| L0.H0 | -0.01 |',
    ].join('\n');
    const lines = renderMarkdown(md, 40);
    const text = linesText(lines);
    expect(text).toContain('Name movers\n═══════════');
    expect(text).not.toContain('**');
    expect(text).not.toContain('`logit_diff`');
    expect(text).toContain('logit_diff');
    expect(text).toContain('the report (report.md)');
    expect(text).toMatch(/• second point that is long enough to\n {2}wrap around/);
    expect(text).toContain('  ◦ nested');
    expect(text).toContain('1. one');
    expect(text).toContain('│ a quote');
    expect(text).toContain('│ const x = 1;');
    expect(text).toContain('┌───────┬────────┐');
    expect(text).toContain('│ L3.H2 │   0.98 │');
    expect(text).toContain('│ L0.H0 │  -0.01 │');
    for (const l of lines) expect(l.reduce((n, s) => n + strWidth(s.text), 0)).toBeLessThanOrEqual(40);
    // Styles are spans, not markup.
    const bold = lines.flat().find((s) => s.text === 'L3.H2' && s.bold);
    expect(bold).toBeTruthy();
    expect(lines.flat().find((s) => s.text === 'logit_diff')?.color).toBeTruthy();
  });

  it('shrinks wide tables to the width and draws through Ink', () => {
    const md = `| a very long column header | another long header | third |\n|---|---|---|\n| ${'x'.repeat(50)} | y | z |`;
    const lines = renderMarkdown(md, 30);
    for (const l of lines) expect(l.reduce((n, s) => n + strWidth(s.text), 0)).toBeLessThanOrEqual(30);
    const { lastFrame } = render(<Markdown text={'## Result\n\nThe **answer** is `Emma`.'} width={40} />);
    const f = plain(lastFrame());
    expect(f).toContain('Result');
    expect(f).toContain('The answer is Emma.');
  });
});

describe('heatmap', () => {
  const rows = ['L0', 'L1', 'L2', 'L3'];
  const cols = ['H0', 'H1', 'H2', 'H3'];
  const values = [[0, 0, 0, 0], [0, 0.1, 0, 0], [0, 0, -0.3, 0], [0, 0, 1, 0]];

  it('labels rows and columns, shades by magnitude and reports the largest cell', () => {
    const { lastFrame } = render(<Heatmap title="IOI head patching" rowLabels={rows} colLabels={cols} values={values} rowAxis="layer" colAxis="head" width={60} />);
    const f = plain(lastFrame());
    expect(f).toContain('IOI head patching');
    expect(f).toContain('head →');
    expect(f).toMatch(/layer ↓ H0 H1 H2 H3/);
    const l3 = f.split('\n').find((l) => l.trim().startsWith('L3'))!;
    expect(l3).toContain('██');
    const l0 = f.split('\n').find((l) => l.trim().startsWith('L0'))!;
    expect(l0).not.toMatch(/[░▒▓█]/);
    expect(f).toContain('max |value| 1 at L3 × H2');
    // Both signs: a diverging scale symmetric around 0.
    expect(f).toMatch(/-1 .* 1/);
  });

  it('writes long token labels vertically, leaves masked cells blank, and cuts columns that do not fit', () => {
    const toks = ['When', 'Mary', 'and', 'market', 'went'];
    const vals = toks.map((_, i) => toks.map((_, j) => (j <= i ? (j === 1 ? 0.9 : 0.02) : null)));
    const text = linesText(heatmapLines({ rowLabels: toks, colLabels: toks, values: vals, rowAxis: 'query', colAxis: 'key' }, 40));
    const lines = text.split('\n');
    // Vertical header: the first letters of each token on one line.
    expect(lines.some((l) => /W M a m w/.test(l))).toBe(true);
    expect(lines.some((l) => /n y {3}k t/.test(l))).toBe(true);
    expect(lines.find((l) => l.trim().startsWith('When'))!.trimEnd()).toMatch(/When ··$/);
    expect(lines.find((l) => l.trim().startsWith('went'))!).toMatch(/went ··██······$/);
    const narrow = linesText(heatmapLines({ rowLabels: ['r'], colLabels: Array.from({ length: 60 }, (_, i) => `c${i}`), values: [Array.from({ length: 60 }, (_, i) => i)] }, 30));
    expect(narrow).toMatch(/more columns not shown/);
    for (const l of narrow.split('\n')) expect(strWidth(l)).toBeLessThanOrEqual(30);
  });
});

describe('tool results and cards', () => {
  it('reads the typed result: scalars, labelled grids (as heatmaps) and tables', () => {
    const v = resultView(PATCH_RESULT);
    expect(v.scalars).toContainEqual(['experimentId', 'exp_abc123']);
    expect(v.scalars).toContainEqual(['corrupted', '-2.4e-19']);
    expect(v.grids).toHaveLength(1);
    expect(v.grids[0]).toMatchObject({ rowLabels: ['L0', 'L1', 'L2', 'L3'], colAxis: 'head', rowAxis: 'layer' });
    expect(v.grids[0].values[3][2]).toBe(0.98);
    expect(v.tables.map((t) => t.title)).toEqual(['top']);
    // Role tables keep the role on every row; nested top lists stay in their row.
    const roles = resultView({ roles: [{ role: 'induction', baseline: 0.1, top: [{ head: 'L0.H6', score: 0.99 }] }] });
    expect(roles.tables[0].columns).toEqual(['role', 'baseline', 'top']);
    // A column of fractions gets one number of decimals.
    expect(roles.tables[0].rows).toEqual([['induction', '0.100', '[{head: L0.H6, score: 0.99}]']]);
  });

  it('shows one-row and two-row tables like any other (a /findings with one finding, a /probe over two layers)', () => {
    const base = { id: 'c2', args: {}, status: 'done' as const, startedAt: 0, endedAt: 10 };
    const one = linesText(toolCardLines({ ...base, name: 'list_findings', structured: { count: 1, findings: [{ name: 'ioi', title: 'IOI', findingId: 'f1', createdAt: null, experimentIds: [], runIds: [], uri: 'neuroscope://findings/ioi' }], folder: '/x' } }, 100));
    expect(one).toContain('findings (1 row)');
    expect(one).toMatch(/│ ioi +│ IOI/);
    const layer = (l: number) => ({ layer: l, hook: `blocks.${l}.hook_resid_post`, heldOut: 0.9 + l / 100, baseline: 0.5, shuffled: 0.4, train: 1 });
    const two = linesText(toolCardLines({ ...base, name: 'train_probe', structured: { experimentId: 'exp_p', layers: [layer(1), layer(2)], best: layer(2) } }, 100));
    expect(two).toContain('layers (2 rows)');
    expect(two).toMatch(/│ +1 │ blocks\.1\.hook_resid_post +│ +0\.91/);
    expect(two).toMatch(/│ +2 │ blocks\.2\.hook_resid_post +│ +0\.92/);
  });

  it('keeps numbers whole in a narrow card and names the columns left out (/lens at 80 columns)', () => {
    const row = (l: number, klToFinal: number, targetProb: number, top1: string) => ({
      site: `L${l}.resid_post`, layer: l, kind: 'resid_post', klToFinal, top1AgreesWithFinal: l === 3 ? 1 : 0,
      targetProb, targetRank: 132.9 - l, targetLogit: 0.069 * l, top1, top1Share: 0.5,
    });
    const structured = { experimentId: 'exp_l', aggregate: [row(0, 4.262, 0.003, '-'), row(3, 0, 0.801, 'Laura')] };
    const lines = toolCardLines({ id: 'c3', name: 'logit_lens', args: {}, status: 'done', startedAt: 0, endedAt: 5, structured }, 76);
    const text = linesText(lines);
    expect(lines.every((l) => strWidth(l.map((s) => s.text).join('')) <= 76)).toBe(true);
    // Every number shown is shown whole; before, "4.262" read "4.2…" and 0.003 read "0.0…".
    expect(text).toMatch(/│ +4\.262 │/);
    expect(text).toMatch(/│ +0\.003 │/);
    expect(text).toMatch(/│ +132\.9 │/);
    expect(text).not.toMatch(/\d…/);
    expect(text.replace(/\s+/g, ' ')).toContain('… 3 more columns: targetLogit, top1, top1Share (/export writes the full table)');
    // At 160 columns the whole table fits and nothing is said.
    expect(linesText(toolCardLines({ id: 'c4', name: 'logit_lens', args: {}, status: 'done', startedAt: 0, endedAt: 5, structured }, 156))).not.toContain('more column');
  });

  it('shows a spinner and progress bar while running, then the heatmap and top rows', async () => {
    const call: ToolCallView = {
      id: 'c1', name: 'patch_activations', status: 'running', startedAt: Date.now(),
      args: { site: 'head', clean: ['When Mary and John went to the store , John gave a drink to', 'b'], layers: [0, 1] },
      progress: { done: 16, total: 32, message: 'patched 16/32 sites' },
    };
    const r = render(<ToolCard call={call} width={90} />);
    let f = plain(r.lastFrame());
    expect(f).toContain('patch_activations');
    expect(f).toMatch(/[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] running/);
    expect(f).toContain('16/32');
    expect(f).toMatch(/█+░+ 16\/32 patched 16\/32 sites/);
    expect(f).toContain('site="head"');
    expect(f).toContain('layers=[0,1]');
    expect(f).toMatch(/clean=\["When Mary and John went to …", … 2 items\]/);
    r.rerender(<ToolCard call={{ ...call, status: 'done', endedAt: call.startedAt + 4300, resultText: 'text for models', structured: PATCH_RESULT }} width={90} />);
    await tick();
    f = plain(r.lastFrame());
    expect(f).toContain('✓ patch_activations');
    expect(f).toContain('4.3 s');
    expect(f).toContain('experimentId exp_abc123');
    expect(f).toContain('layer ↓ H0 H1 H2');
    expect(f).toContain('max |value| 0.98 at L3 × H2');
    expect(f).toContain('│ L3.H5 │');
    r.rerender(<ToolCard call={{ ...call, status: 'error', endedAt: call.startedAt + 50, error: 'invalid arguments for patch_activations:\n  site: Invalid option' }} width={90} />);
    f = plain(r.lastFrame());
    expect(f).toContain('✗ patch_activations');
    expect(f).toContain('site: Invalid option');
    r.unmount();
  });
});

describe('input line', () => {
  const key = (over: Record<string, boolean> = {}) => ({ upArrow: false, downArrow: false, leftArrow: false, rightArrow: false, pageDown: false, pageUp: false, home: false, end: false, return: false, escape: false, ctrl: false, shift: false, tab: false, backspace: false, delete: false, meta: false, super: false, hyper: false, capsLock: false, numLock: false, ...over });

  it('keeps history: up goes back, down returns to the draft', () => {
    let s = emptyEditor(['/patch', '/lens']);
    s = editorReducer(s, { type: 'insert', text: 'dra' });
    s = editorReducer(s, { type: 'up' });
    expect(s.text).toBe('/lens');
    s = editorReducer(s, { type: 'up' });
    expect(s.text).toBe('/patch');
    s = editorReducer(s, { type: 'up' });
    expect(s.text).toBe('/patch');
    s = editorReducer(s, { type: 'down' });
    s = editorReducer(s, { type: 'down' });
    expect(s.text).toBe('dra');
  });

  it('makes newlines with Alt+Enter and a trailing backslash; Enter sends; a chunk ending in a return is typed then sent', () => {
    let s = emptyEditor();
    s = handleKey(s, 'first', key()).state;
    s = handleKey(s, '\r', key({ return: true, meta: true })).state;
    s = handleKey(s, 'second\\', key()).state;
    s = handleKey(s, '\r', key({ return: true })).state;
    s = handleKey(s, 'third', key()).state;
    expect(s.text).toBe('first\nsecond\nthird');
    // Up inside a multi-line input moves the cursor, not through history.
    const up = handleKey(s, '', key({ upArrow: true })).state;
    expect(up.text).toBe(s.text);
    expect(up.cursor).toBeLessThan(s.cursor);
    const sent = handleKey(s, '\r', key({ return: true }));
    expect(sent.submitted).toBe('first\nsecond\nthird');
    expect(sent.state.text).toBe('');
    const chunk = handleKey(emptyEditor(), '/patch site=resid_pre\r', key());
    expect(chunk.submitted).toBe('/patch site=resid_pre');
    const cooked = handleKey(emptyEditor(), '/help\n', key());
    expect(cooked.submitted).toBe('/help');
    const pasted = handleKey(emptyEditor(), 'line one\rline two', key());
    expect(pasted.submitted).toBeUndefined();
    expect(pasted.state.text).toBe('line one\nline two');
  });

  it('edits and recalls history through the Ink component', async () => {
    const sent: string[] = [];
    function Harness() {
      return <InputLine onSubmit={(t) => sent.push(t)} history={['/help']} />;
    }
    const r = render(<><Text>chat</Text><Harness /></>);
    await tick();
    for (const ch of '/pach') r.stdin.write(ch);
    await tick();
    r.stdin.write('\u001B[D'); // left, left: between "a" and "c"
    r.stdin.write('\u001B[D');
    r.stdin.write('t');
    await tick();
    expect(plain(r.lastFrame())).toContain('/patch');
    r.stdin.write('\r');
    await tick();
    expect(sent).toEqual(['/patch']);
    r.stdin.write('\u001B[A'); // up: the last entry
    await tick();
    expect(plain(r.lastFrame())).toContain('› /patch');
    r.stdin.write('\u001B[A'); // up: the one before
    await tick();
    expect(plain(r.lastFrame())).toContain('› /help');
    r.stdin.write('\u001B[B');
    r.stdin.write('\u001B[B'); // back to the (empty) draft
    await tick();
    expect(plain(r.lastFrame())).not.toContain('/help');
    r.stdin.write('a\\');
    r.stdin.write('\r');
    r.stdin.write('b');
    await tick();
    expect(plain(r.lastFrame())).toMatch(/› a\s*\n\s*… b/);
    r.stdin.write('\u007f'); // backspace
    r.stdin.write('\u007f');
    r.stdin.write('\r');
    await tick();
    expect(sent).toEqual(['/patch', 'a']);
    r.unmount();
  });
});

describe('slash-command arguments', () => {
  it('parses quoted text, lists, JSON, numbers and positional words', () => {
    const a = parseArgs('resid site=resid_pre clean="When Mary and John went" corrupted=\'x y\' target=John layers=0,2 heads=[1, 3] perPosition=true n=4');
    expect(a.positional).toEqual(['resid']);
    expect(a.named).toEqual({ site: 'resid_pre', clean: 'When Mary and John went', corrupted: 'x y', target: 'John', layers: [0, 2], heads: [1, 3], perPosition: true, n: 4 });
    expect(tokenize('a="b c" d')).toEqual(['a="b c"', 'd']);
    expect(() => parseArgs('clean="unclosed')).toThrow(ArgError);
    expect(() => parseArgs('layers=[0,')).toThrow(/unclosed bracket/);
    expect(() => parseArgs('site=')).toThrow(/has no value/);
    expect(() => parseArgs('n=1 n=2')).toThrow(/twice/);
  });
});

describe('header', () => {
  it('wraps the LLM line at 80 columns so how to configure one stays in view', () => {
    const status: ChatStatus = { model: 'tiny-s-seed0', modelDir: null, workspace: 'ready', store: '/d', llm: NO_LLM_LABEL, session: 's', busy: null };
    const frame = plain(render(<Header status={status} width={80} />).lastFrame());
    expect(frame.split('\n').every((l) => strWidth(l) <= 80)).toBe(true);
    // Before, the line ended "(set OPENAI_API_KEY or OPENAI_BASE_URL to …".
    expect(frame.replace(/[│\s]+/g, ' ')).toContain('(set OPENAI_API_KEY or OPENAI_BASE_URL to chat)');
  });
});

describe('status line', () => {
  const base: ChatStatus = { model: 'tiny-s-seed0', modelDir: null, workspace: 'ready', store: '/d', llm: 'none', session: 's', busy: null };
  const line = (s: ChatStatus) => plain(render(<StatusLine status={s} />).lastFrame());

  it('says ready only when the workspace is open, and never beside an error', () => {
    expect(line(base)).toMatch(/^● ready · tiny-s-seed0 · no LLM/);
    expect(line({ ...base, workspace: 'opening' })).toMatch(/^● opening · opening…/);
    const failed = line({ ...base, workspace: { error: 'The data directory /d is in use by process 42' } });
    expect(failed).toMatch(/^● not open · error: The data directory \/d is in use by process 42/);
    expect(failed).not.toContain('ready');
    expect(line({ ...base, busy: 'patch_activations' })).toMatch(/^● patch_activations running/);
  });
});
