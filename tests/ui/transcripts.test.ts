// Transcripts: a chat session logged as JSONL (a crash-torn last line is skipped) exported as
// Markdown with turns, collapsible tool calls, tables and SVG plots; a ChatGPT or Claude data export,
// a plain message list and a conversation pasted as text imported as the same Markdown.
import { appendFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkPlot } from '../helpers/plot-check.ts';
import { afterAll, describe, expect, it } from 'vitest';
import { exportSession, sessionConversation } from '../../agent/transcripts/export.ts';
import { conversationPath, conversationsFromJson, importConversations } from '../../agent/transcripts/import.ts';
import { findSession, listSessions, readSession, SessionLog } from '../../agent/transcripts/session.ts';
import { CHATGPT_EXPORT } from './chatgpt-export.ts';

const root = mkdtempSync(join(tmpdir(), 'ns-transcripts-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const PATCH_RESULT = {
  experimentId: 'exp_abc123',
  metric: 'logit_diff',
  grid: { rows: { name: 'layer', labels: ['L0', 'L1'] }, cols: { name: 'head', labels: ['H0', 'H1', 'H2'] }, values: [[0, 0.1, 0], [0, 0, 0.95]] },
  top: [{ site: 'L1.H2', effect: 0.95, value: 9.3 }, { site: 'L0.H1', effect: 0.1, value: 1 }],
};

describe('sessions', () => {
  it('are saved as they happen and export to Markdown with tool calls in <details>, tables and plots', async () => {
    const data = join(root, 'data');
    const log = new SessionLog(data, '20251125-101500-abcd', { model: 'tiny-s-seed0', llm: 'none' });
    log.user('/patch');
    log.write({ type: 'tool_start', at: log.now(), id: 'c1', name: 'patch_activations', args: { site: 'head', clean: ['When Mary and John went to the store , John gave a drink to'] } });
    log.write({ type: 'tool_end', at: log.now(), id: 'c1', name: 'patch_activations', status: 'done', result: 'text for models', structured: PATCH_RESULT, ms: 4300 });
    log.user('Which head moves the name?');
    log.assistant('The name mover is', true);
    log.write({ type: 'tool_start', at: log.now(), id: 'c2', name: 'ablate', args: { components: ['L1.H2'] } });
    log.write({ type: 'tool_end', at: log.now(), id: 'c2', name: 'ablate', status: 'error', error: 'ablate: components must be heads', ms: 12 });
    log.assistant('The name mover is **L1.H2**: patching it restores 0.95 of the logit difference.');
    log.note('Cancelled.', 'info');
    // A crash while writing: the last line is torn.
    appendFileSync(log.file, '{"type":"assistant","at":"2025-11-25T10:16:00Z","te');

    const s = readSession(log.file);
    expect(s.skipped).toBe(1);
    const conv = sessionConversation(s);
    expect(conv.turns.filter((t) => t.user !== undefined).map((t) => t.user)).toEqual(['/patch', 'Which head moves the name?']);
    // Partial then final reply of one stream: one item with the final text.
    const replies = conv.turns[2].items.filter((i) => i.kind === 'assistant');
    expect(replies).toHaveLength(2);
    expect((replies[1] as { text: string }).text).toContain('**L1.H2**');

    expect(listSessions(data).map((x) => x.id)).toEqual(['20251125-101500-abcd']);
    expect(findSession(data, 'latest')).toBe(log.file);
    expect(findSession(data, '20251125-1015')).toBe(log.file);
    expect(() => findSession(data, 'nope')).toThrow(/no session "nope"/);

    const out = join(root, 'transcripts');
    const file = await exportSession(log.file, { outDir: out });
    expect(file.startsWith(out)).toBe(true);
    const md = readFileSync(file, 'utf8');
    // Titled by the first question, not the first command.
    expect(md).toMatch(/^# NeuroScope: Which head moves the name\?\n/);
    expect(md).toContain('- **Model:** tiny-s-seed0');
    expect(md).toMatch(/- \*\*Date:\*\* \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC/);
    expect(md).toContain('## 1. /patch');
    expect(md).toContain('## 2. Which head moves the name?');
    expect(md).toContain('<details>\n<summary>Tool call: <code>patch_activations</code> · done · 4.3 s</summary>');
    expect(md).toContain('"site": "head"');
    expect(md).toContain('- experimentId: `exp_abc123`');
    expect(md).toContain('patch_activations: grid (layer × head):\n\n| layer \\\\ head | H0 | H1 | H2 |\n|---|---|---|---|\n| L0 | 0 | 0.1 | 0 |\n| L1 | 0 | 0 | 0.95 |');
    expect(md).toContain('top (2 rows):\n\n| site | effect | value |\n|---|---|---|\n| L1.H2 | 0.950 | 9.300 |');
    expect(md).toContain('**Error**');
    expect(md).toContain('ablate: components must be heads');
    expect(md).toContain('The name mover is **L1.H2**');
    expect(md.match(/<details>/g)).toHaveLength(2);
    expect(md.match(/<\/details>/g)).toHaveLength(2);
    const plot = /!\[[^\]]*\]\(([^)]+\.svg)\)/.exec(md);
    expect(plot).not.toBeNull();
    const svg = readFileSync(join(out, decodeURI(plot![1])), 'utf8');
    expect(svg.startsWith('<svg')).toBe(true);
    // The plot as a reader sees it: its spec written beside it, rendered to PNG and checked.
    const spec = JSON.parse(readFileSync(join(out, decodeURI(plot![1]).replace(/\.svg$/, '.vl.json')), 'utf8'));
    expect(spec.title).toBe('patch_activations: grid (layer × head)');
    expect(spec.layer[0].encoding.x.title).toBe('head');
    checkPlot(plot![1], svg, spec);
    // Exporting again rewrites the same file.
    expect(await exportSession(log.file, { outDir: out })).toBe(file);
    // A bare name goes into the transcripts folder (as /help says), a path where it points.
    expect(await exportSession(log.file, { outDir: out, file: 'notes' })).toBe(join(out, 'notes.md'));
    expect(await exportSession(log.file, { outDir: out, file: join(root, 'elsewhere', 'n.md') })).toBe(join(root, 'elsewhere', 'n.md'));
  }, 60_000);

  it('keep embedded headings below the turn headings, name every model used, and title command-only sessions by their experiments', async () => {
    const data = join(root, 'data-outline');
    const log = new SessionLog(data, '20251126-090000-efgh', { model: 'tiny-s-seed0', llm: 'none' });
    log.user('/help');
    log.note('## Commands\n\n- `/patch`: activation patching\n\n```md\n## kept in code\n```');
    log.user('/patch');
    log.user('/model tiny-m');
    log.write({ type: 'model', at: log.now(), model: 'tiny-m-seed0' });
    log.user('/attn');
    const conv = sessionConversation(readSession(log.file));
    expect(conv.title).toBe('NeuroScope: /patch, /attn');
    expect(conv.model).toBe('tiny-s-seed0 (turns 1-3), tiny-m-seed0 (turn 4)');
    const md = readFileSync(await exportSession(log.file, { outDir: join(root, 'outline') }), 'utf8');
    expect(md).toContain('#### Commands');
    expect(md).not.toMatch(/^## Commands/m);
    expect(md).toContain('## kept in code');
    expect(md).toContain('- **Model:** tiny-s-seed0 (turns 1-3), tiny-m-seed0 (turn 4)');
  });
});

describe('imports', () => {
  it('follow the current branch of a ChatGPT conversation', () => {
    const path = conversationPath(CHATGPT_EXPORT[0] as never);
    expect(path.map((m) => m.author?.role)).toEqual(['system', 'user', 'assistant', 'user', 'assistant', 'tool', 'assistant']);
    const noCurrent = conversationPath(CHATGPT_EXPORT[1] as never);
    expect(noCurrent).toHaveLength(2);
  });

  it('write one Markdown file per ChatGPT conversation', async () => {
    const file = join(root, 'conversations.json');
    writeFileSync(file, JSON.stringify(CHATGPT_EXPORT));
    const out = join(root, 'imported');
    const files = await importConversations(file, out);
    expect(files.map((f) => f.slice(out.length + 1))).toEqual(['2024-11-25-induction-heads-explained.md', '2024-11-26-second-chat.md']);
    const md = readFileSync(files[0], 'utf8');
    expect(md).toMatch(/^# Induction heads explained\n/);
    expect(md).toContain('- **Source:** ChatGPT data export (conversations.json)');
    expect(md).toContain('## 1. What is an induction head?');
    expect(md).toContain('**Assistant:**\n\nAn induction head attends to the token **after**');
    expect(md).toContain('| L1.H4 | induction |');
    expect(md).toContain('## 2. Show code');
    expect(md).not.toContain('abandoned branch');
    expect(md).toContain('<summary>Tool call: <code>python</code>');
    expect(md).toContain('print(1+1)');
    expect(md).toContain('The code printed 2.');
    expect(readFileSync(files[1], 'utf8')).toContain('Hi there');
    // Importing again rewrites the same files.
    expect(await importConversations(file, out)).toEqual(files);
    expect(readdirSync(out).filter((f) => f.endsWith('.md'))).toHaveLength(2);
  });

  it('read plain message lists with tool calls, and refuse other JSON clearly', () => {
    const PATCH_TEXT = 'experimentId: exp_abc123\nmetric: logit_diff';
    const [conv] = conversationsFromJson([
      { role: 'system', content: 'You are helpful.' },
      { role: 'user', content: 'Patch IOI' },
      { role: 'assistant', content: null, tool_calls: [{ id: 't1', type: 'function', function: { name: 'patch_activations', arguments: '{"site":"head"}' } }] },
      { role: 'tool', tool_call_id: 't1', content: PATCH_TEXT },
      { role: 'assistant', content: [{ type: 'text', text: 'L1.H2 carries it.' }] },
    ], 'messages.json');
    expect(conv.title).toBe('Imported conversation: Patch IOI');
    const items = conv.turns[1].items;
    expect(items[0]).toMatchObject({ kind: 'tool', name: 'patch_activations', args: { site: 'head' }, result: PATCH_TEXT });
    expect(items[1]).toMatchObject({ kind: 'assistant', text: 'L1.H2 carries it.' });
    expect(() => conversationsFromJson({ foo: 1 }, 'x.json')).toThrow(/neither a ChatGPT export/);
    expect(() => conversationsFromJson([], 'empty.json')).toThrow(/empty list: no conversations/);
    expect(() => conversationsFromJson([{ content: 'no role' }], 'x.json')).toThrow(/neither/);
    expect(existsSync(join(root, 'none'))).toBe(false);
  });

  it('show ChatGPT code as code, bare tool output without arguments, a picture-only first message by what it was, and HTML as text', async () => {
    const node = (id: string, parent: string | null, children: string[], message: unknown) => ({ id, parent, children, message });
    const file = join(root, 'gpt-defects.json');
    writeFileSync(file, JSON.stringify([{
      title: 'Defects <b>', create_time: 1732530000, current_node: 'a',
      mapping: {
        r: node('r', null, ['u'], null),
        u: node('u', 'r', ['c'], { author: { role: 'user' }, content: { content_type: 'multimodal_text', parts: [{ content_type: 'image_asset_pointer', asset_pointer: 'file-service://x' }] } }),
        c: node('c', 'u', ['o'], { author: { role: 'assistant' }, recipient: 'python', content: { content_type: 'code', language: 'python', text: 'x = "a"\nprint(x)' } }),
        o: node('o', 'c', ['b'], { author: { role: 'tool', name: 'python' }, content: { content_type: 'execution_output', text: 'a' } }),
        b: node('b', 'o', ['a'], { author: { role: 'tool', name: 'browser' }, content: { content_type: 'text', parts: ['page text'] } }),
        a: node('a', 'b', [], { author: { role: 'assistant' }, content: { content_type: 'text', parts: ['Done. <script>alert(1)</script> and `<kept>`'] } }),
      },
    }]));
    const [out] = await importConversations(file, join(root, 'defects'));
    const md = readFileSync(out, 'utf8');
    expect(md).toMatch(/^# Defects &lt;b>\n/);
    expect(md).toContain('## 1. (image only)');
    expect(md).toContain('**Input**\n\n```python\nx = "a"\nprint(x)\n```');
    expect(md).not.toContain('\\"a\\"');
    // The browser output had no call: no "Arguments {}".
    const browser = md.slice(md.indexOf('<code>browser</code>'));
    expect(browser.slice(0, browser.indexOf('</details>'))).not.toContain('Arguments');
    expect(md).toContain('Done. &lt;script>alert(1)&lt;/script> and `<kept>`');
    expect(md).not.toContain('<script>');
  });

  it('read a conversation pasted as text and a Claude export', async () => {
    const pasted = join(root, 'pasted.txt');
    writeFileSync(pasted, [
      'User: Which heads do induction?', '',
      'Assistant: Two of them:', '', '## Heads', '', '- **L1.H4** copies', '', '```text', 'User: not a turn inside code', '```', '',
      'User: And previous-token heads?',
      'ChatGPT: L0.H2.',
    ].join('\n'));
    const [p] = await importConversations(pasted, join(root, 'pasted'));
    const md = readFileSync(p, 'utf8');
    expect(md).toMatch(/^# Imported conversation: Which heads do induction\?\n/);
    expect(md).toContain('- **Source:** pasted conversation (pasted.txt)');
    expect(md).toContain('## 1. Which heads do induction?');
    expect(md).toContain('#### Heads');
    expect(md).toContain('User: not a turn inside code');
    expect(md).toContain('## 2. And previous-token heads?');
    expect(md).toContain('**Assistant:**\n\nL0.H2.');
    const prose = join(root, 'prose.txt');
    writeFileSync(prose, 'Just some notes, no turns.');
    await expect(importConversations(prose, join(root, 'pasted'))).rejects.toThrow(/nor a pasted conversation with "User:" and "Assistant:"/);

    const claude = join(root, 'claude.json');
    writeFileSync(claude, JSON.stringify([{
      uuid: 'c1', name: 'Steering vectors', created_at: '2025-01-02T03:04:05Z',
      chat_messages: [
        { sender: 'human', text: 'How do I steer?', content: [{ type: 'text', text: 'How do I steer?' }] },
        { sender: 'assistant', content: [{ type: 'text', text: 'Let me check.' }, { type: 'tool_use', name: 'web_search', input: { query: 'steering vectors' } }, { type: 'tool_result', name: 'web_search', content: [{ type: 'text', text: 'ActAdd paper' }] }, { type: 'text', text: 'Add a contrast vector.' }] },
      ],
    }]));
    const [c] = await importConversations(claude, join(root, 'claude'));
    expect(c.endsWith('2025-01-02-steering-vectors.md')).toBe(true);
    const cm = readFileSync(c, 'utf8');
    expect(cm).toContain('- **Source:** Claude data export (claude.json)');
    expect(cm).toContain('## 1. How do I steer?');
    expect(cm).toContain('<summary>Tool call: <code>web_search</code>');
    expect(cm).toContain('"query": "steering vectors"');
    expect(cm).toContain('ActAdd paper');
    expect(cm.indexOf('Let me check.')).toBeLessThan(cm.indexOf('Add a contrast vector.'));
  });
});
