// The real chat, used as a person would: `neuroscope start` in a tmux terminal (its own tmux server),
// keys sent with send-keys, the screen read with capture-pane. /patch alone draws the IOI
// head-patching heatmap on the built-in model; a question goes to the agent, here driven by a
// scripted OpenAI-compatible server, and its tool call shows as a card; /export writes the Markdown
// transcript; /quit leaves with the session saved. Then the CLI exports the saved session and imports
// a ChatGPT data export. Skipped only when tmux is not installed (CI installs it).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { ensureTinyModel } from '../../engine/tiny/index.ts';
import { byLength, ioiPatchingSet } from '../../tools/prompt-sets.ts';
import { loadSuitePrompts } from '../../tools/suite/prompts.ts';
import { lastToolText, startScriptedLlm, type ScriptedLlm } from '../agent/scripted-llm.ts';
import { CHATGPT_EXPORT } from './chatgpt-export.ts';

const HAS_TMUX = spawnSync('tmux', ['-V']).status === 0;
const REPO = resolve(import.meta.dirname, '..', '..');
const BIN = join(REPO, 'bin', 'neuroscope.js');
const SOCKET = `ns-ui-test-${process.pid}`;
const root = mkdtempSync(join(tmpdir(), 'ns-tmux-'));
let llm: ScriptedLlm | null = null;

const tmux = (...args: string[]) => execFileSync('tmux', ['-L', SOCKET, ...args], { encoding: 'utf8' });
const screen = () => tmux('capture-pane', '-p', '-J', '-t', 'chat', '-S', '-3000');
const type = (text: string) => {
  tmux('send-keys', '-t', 'chat', '-l', text);
  tmux('send-keys', '-t', 'chat', 'Enter');
};

async function waitFor(what: string, ok: (s: string) => boolean, ms = 60_000): Promise<string> {
  const end = Date.now() + ms;
  let s = '';
  while (Date.now() < end) {
    try {
      s = screen();
    } catch {
      s = '(no tmux pane)';
    }
    if (ok(s)) return s;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what}; the screen:\n${s.split('\n').filter((l) => l.trim()).slice(-60).join('\n')}`);
}

const count = (s: string, needle: string) => s.split(needle).length - 1;

afterAll(async () => {
  try {
    tmux('kill-server');
  } catch {
    /* already gone */
  }
  await llm?.close();
  rmSync(root, { recursive: true, force: true });
});

it.skipIf(!HAS_TMUX)('patch, ask the agent, export and quit in a real terminal; CLI export and import', async () => {
  const data = join(root, 'data');
  const work = join(root, 'work');
  mkdirSync(work, { recursive: true });
  // The built-in model the chat opens by default (built here so the scripted model can use its prompts).
  const modelDir = ensureTinyModel(data, 'tiny-s', 0);
  const prompts = loadSuitePrompts(modelDir);
  const set = ioiPatchingSet(byLength(prompts.ioi)[0].slice(0, 4), 'io_swap');
  const nameMover = JSON.parse(readFileSync(join(modelDir, 'manifest.json'), 'utf8')).roles['ioi.name_mover'][0] as string;

  llm = await startScriptedLlm([
    { text: 'I will patch every head on IOI prompts.', toolCalls: [{ name: 'patch_activations', arguments: { ...set, site: 'head' } }] },
    (req) => {
      const result = lastToolText(req);
      const exp = /exp_[a-z0-9]+/.exec(result)?.[0] ?? 'unknown';
      const top = /\| (L\d+\.H\d+) \| 1 \|/.exec(result)?.[1] ?? /\| (L\d+\.H\d+) \|/.exec(result)?.[1] ?? '?';
      return { text: `The name mover is **${top}**: patching it alone restores the clean logit difference (${exp}).` };
    },
  ]);

  const env = [
    `NEUROSCOPE_DATA=${data}`, `OPENAI_BASE_URL=${llm.url}`, 'OPENAI_API_KEY=test-key', 'NEUROSCOPE_MODEL=scripted-model',
    'NEUROSCOPE_LLM_RETRIES=0', 'TERM=xterm-256color', 'LANG=C.UTF-8',
    // As on CI machines: Ink would draw only static output if the chat did not drop it on a terminal.
    'CI=true',
  ];
  tmux('-f', '/dev/null', 'new-session', '-d', '-s', 'chat', '-x', '120', '-y', '50', '-c', work,
    `env -u OPENAI_ORG_ID ${env.join(' ')} node ${BIN} start; echo "[exited $?]"; sleep 600`);

  await waitFor('the chat to be ready', (s) => s.includes('● ready') && s.includes('tiny-s-seed0'), 90_000);
  const header = screen();
  expect(header).toContain('NeuroScope');
  expect(header).toContain(`store ${data}`);
  expect(header).toContain('scripted-model');

  // /patch alone: IOI head patching on the built-in prompts, drawn as a layer x head heatmap.
  type('/patch');
  let s = await waitFor('the patch card', (x) => x.includes('✓ patch_activations') && x.includes('max |value|'));
  expect(s).toContain('layer ↓ H0 H1 H2 H3');
  // The realistic model's name mover restores more than all of it (its negative partner stays corrupted).
  const peak = new RegExp(`max \\|value\\| ([\\d.]+) at ${nameMover.replace('.H', ' × H')}`).exec(s);
  expect(peak).not.toBeNull();
  expect(Number(peak![1])).toBeGreaterThan(0.8);
  expect(s).toMatch(/L3 [·░▒▓█]+/);
  expect(s).toContain('│ site');

  // A question for the agent: its tool call appears as a card, then the streamed answer.
  type("Which head moves the indirect object's name?");
  s = await waitFor('the agent answer', (x) => x.includes(`The name mover is ${nameMover}: patching`) && count(x, '✓ patch_activations') >= 2 && x.includes('● ready'));
  expect(s).toContain('I will patch every head on IOI prompts.');
  expect(s).toContain(`The name mover is ${nameMover}`);
  expect(llm.requests).toHaveLength(2);

  // A bad argument gets a clear message, not a crash.
  type('/patch layerz=1');
  await waitFor('the argument error', (x) => x.includes('/patch does not take "layerz"'));
  // A hook filter that matches nothing says so and names the hook parts.
  type('/hooks zzz');
  await waitFor('the no-match error', (x) => x.includes('✗ list_hooks') && x.includes('no hook name contains "zzz"'));

  // Narrowing the terminal while a card runs: the card is redrawn at the new width on a clean
  // screen, with no fragments of the wider frame left in view.
  type('/patch');
  await waitFor('a running patch card', (x) => x.includes('⚙ patch_activations'));
  tmux('resize-window', '-t', 'chat', '-x', '70', '-y', '50');
  const visible = () => tmux('capture-pane', '-p', '-t', 'chat');
  await waitFor('the redraw at 70 columns', () => visible().includes('Esc cancel') && visible().split('\n').every((l) => [...l].length <= 70));
  s = visible();
  expect(count(s, 'patch_activations  '), s).toBe(1);
  s = await waitFor('the patch to finish', (x) => x.includes('● ready') && count(x, '✓ patch_activations') >= 3);
  expect(count(visible(), '⚙ patch_activations')).toBe(0);
  tmux('resize-window', '-t', 'chat', '-x', '120', '-y', '50');

  type('/export');
  s = await waitFor('the export', (x) => x.includes('Transcript written to'));
  const tdir = join(work, 'transcripts');
  const mdFiles = readdirSync(tdir).filter((f) => f.endsWith('.md'));
  expect(mdFiles).toHaveLength(1);
  const md = readFileSync(join(tdir, mdFiles[0]), 'utf8');
  // Titled by the first question asked, not by a slash command.
  expect(md).toMatch(/^# NeuroScope: Which head moves the indirect object's name\?/);
  expect(md).toContain('- **Model:** tiny-s-seed0');
  expect(md).toContain('- **LLM:** scripted-model');
  expect(md).toContain('## 1. /patch');
  expect(md).toContain("## 2. Which head moves the indirect object's name?");
  expect(md).toContain('<summary>Tool call: <code>patch_activations</code> · done');
  // Four tool cards: /patch, the agent's patch, /hooks zzz (failed), the /patch resized mid-job.
  expect(count(md, '<details>')).toBe(4);
  expect(md).toContain(`The name mover is **${nameMover}**`);
  expect(md).toContain('| site | effect | value |');
  const plots = [...md.matchAll(/!\[[^\]]*\]\(([^)]+\.svg)\)/g)].map((m) => join(tdir, decodeURI(m[1])));
  expect(plots.length).toBe(3);
  for (const p of plots) expect(readFileSync(p, 'utf8').startsWith('<svg')).toBe(true);
  expect(md).toContain('![patch_activations: normalised effects (layer × head)]');

  type('/quit');
  s = await waitFor('the exit', (x) => x.includes('[exited 0]'), 30_000);
  expect(s).toContain('Session saved:');
  const sessions = readdirSync(join(data, 'sessions'));
  expect(sessions).toHaveLength(1);
  // The store was closed cleanly: it opens again.
  expect(existsSync(join(data, 'neuroscope.duckdb'))).toBe(true);

  // The CLI: export the saved session, import a ChatGPT data export.
  const cli = (...args: string[]) => execFileSync(process.execPath, [BIN, ...args], { cwd: work, encoding: 'utf8', env: { ...process.env, NEUROSCOPE_DATA: data } });
  const out = cli('transcript', 'export', 'latest', '--out', join(root, 'again.md')).trim();
  expect(out).toBe(join(root, 'again.md'));
  const again = readFileSync(out, 'utf8');
  expect(again).toContain("## 2. Which head moves the indirect object's name?");
  expect(again).toContain(`The name mover is **${nameMover}**`);
  writeFileSync(join(root, 'conversations.json'), JSON.stringify(CHATGPT_EXPORT));
  const imported = cli('transcript', 'import', join(root, 'conversations.json'), '--out', join(root, 'imported')).trim().split('\n');
  expect(imported).toHaveLength(2);
  const first = readFileSync(imported[0], 'utf8');
  expect(first).toMatch(/^# Induction heads explained/);
  expect(first).toContain('## 1. What is an induction head?');
  expect(first).toContain('| L1.H4 | induction |');
  expect(first).toContain('The code printed 2.');
}, 180_000);
