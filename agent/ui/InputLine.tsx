// The input line: editing with a cursor, history on up/down, multi-line input (Alt+Enter, or a
// trailing backslash before Enter, inserts a newline; pasted newlines are kept), Enter sends.
import { Box, Text, useInput, type Key } from 'ink';
import React, { useRef, useState } from 'react';

export interface EditorState {
  text: string;
  cursor: number;
  history: string[];
  /** Position in history; history.length means the draft being typed. */
  index: number;
  draft: string;
}

export type EditorAction =
  | { type: 'insert'; text: string }
  | { type: 'backslashNewline' }
  | { type: 'backspace' }
  | { type: 'deleteForward' }
  | { type: 'deleteWordBack' }
  | { type: 'killLine' }
  | { type: 'left' }
  | { type: 'right' }
  | { type: 'wordLeft' }
  | { type: 'wordRight' }
  | { type: 'home' }
  | { type: 'end' }
  | { type: 'up' }
  | { type: 'down' }
  | { type: 'clear' }
  | { type: 'submitted'; text: string }
  | { type: 'setHistory'; history: string[] };

export const emptyEditor = (history: string[] = []): EditorState => ({ text: '', cursor: 0, history, index: history.length, draft: '' });

const lineStart = (t: string, c: number) => t.lastIndexOf('\n', c - 1) + 1;
const lineEnd = (t: string, c: number) => {
  const e = t.indexOf('\n', c);
  return e < 0 ? t.length : e;
};

export function editorReducer(s: EditorState, a: EditorAction): EditorState {
  const { text, cursor } = s;
  switch (a.type) {
    case 'insert': {
      const ins = a.text.replace(/\r\n?/g, '\n');
      return { ...s, text: text.slice(0, cursor) + ins + text.slice(cursor), cursor: cursor + ins.length };
    }
    case 'backslashNewline':
      // "text\\" + Enter: the backslash becomes a line break.
      return { ...s, text: `${text.slice(0, cursor - 1)}\n${text.slice(cursor)}`, cursor };
    case 'backspace':
      if (cursor === 0) return s;
      return { ...s, text: text.slice(0, cursor - 1) + text.slice(cursor), cursor: cursor - 1 };
    case 'deleteForward':
      if (cursor >= text.length) return s;
      return { ...s, text: text.slice(0, cursor) + text.slice(cursor + 1) };
    case 'deleteWordBack': {
      let i = cursor;
      while (i > 0 && /\s/.test(text[i - 1])) i--;
      while (i > 0 && !/\s/.test(text[i - 1])) i--;
      return { ...s, text: text.slice(0, i) + text.slice(cursor), cursor: i };
    }
    case 'killLine': {
      const st = lineStart(text, cursor);
      return { ...s, text: text.slice(0, st) + text.slice(cursor), cursor: st };
    }
    case 'left':
      return { ...s, cursor: Math.max(0, cursor - 1) };
    case 'right':
      return { ...s, cursor: Math.min(text.length, cursor + 1) };
    case 'wordLeft': {
      let i = cursor;
      while (i > 0 && /\s/.test(text[i - 1])) i--;
      while (i > 0 && !/\s/.test(text[i - 1])) i--;
      return { ...s, cursor: i };
    }
    case 'wordRight': {
      let i = cursor;
      while (i < text.length && /\s/.test(text[i])) i++;
      while (i < text.length && !/\s/.test(text[i])) i++;
      return { ...s, cursor: i };
    }
    case 'home':
      return { ...s, cursor: lineStart(text, cursor) };
    case 'end':
      return { ...s, cursor: lineEnd(text, cursor) };
    case 'up': {
      const st = lineStart(text, cursor);
      if (st > 0) {
        // Move within a multi-line input.
        const prevStart = lineStart(text, st - 1);
        return { ...s, cursor: Math.min(prevStart + (cursor - st), st - 1) };
      }
      if (s.index === 0 || s.history.length === 0) return s;
      const index = s.index - 1;
      const draft = s.index === s.history.length ? text : s.draft;
      const t = s.history[index];
      return { ...s, index, draft, text: t, cursor: t.length };
    }
    case 'down': {
      const en = lineEnd(text, cursor);
      if (en < text.length) {
        const st = lineStart(text, cursor);
        const nextEnd = lineEnd(text, en + 1);
        return { ...s, cursor: Math.min(en + 1 + (cursor - st), nextEnd) };
      }
      if (s.index >= s.history.length) return s;
      const index = s.index + 1;
      const t = index === s.history.length ? s.draft : s.history[index];
      return { ...s, index, text: t, cursor: t.length };
    }
    case 'clear':
      return { ...s, text: '', cursor: 0, index: s.history.length, draft: '' };
    case 'submitted': {
      const history = a.text.trim() && s.history[s.history.length - 1] !== a.text ? [...s.history, a.text] : s.history;
      return { text: '', cursor: 0, history, index: history.length, draft: '' };
    }
    case 'setHistory':
      return { ...s, history: a.history, index: a.history.length };
  }
}

/** What a key does: an edit, "submit", or nothing. */
export function keyAction(input: string, key: Key, s: EditorState): EditorAction | 'submit' | null {
  if (key.return) {
    if (key.meta || key.shift) return { type: 'insert', text: '\n' };
    // A trailing backslash continues the input on a new line.
    if (s.cursor === s.text.length && s.text.endsWith('\\')) return { type: 'backslashNewline' };
    return 'submit';
  }
  if (key.upArrow) return { type: 'up' };
  if (key.downArrow) return { type: 'down' };
  if (key.leftArrow) return key.ctrl || key.meta ? { type: 'wordLeft' } : { type: 'left' };
  if (key.rightArrow) return key.ctrl || key.meta ? { type: 'wordRight' } : { type: 'right' };
  if (key.home) return { type: 'home' };
  if (key.end) return { type: 'end' };
  // Most terminals send DEL (0x7f) for Backspace, which Ink calls "delete".
  if (key.backspace || key.delete) return key.meta ? { type: 'deleteWordBack' } : { type: 'backspace' };
  if (key.ctrl) {
    switch (input) {
      case 'a': return { type: 'home' };
      case 'e': return { type: 'end' };
      case 'b': return { type: 'left' };
      case 'f': return { type: 'right' };
      case 'd': return { type: 'deleteForward' };
      case 'w': return { type: 'deleteWordBack' };
      case 'u': return { type: 'killLine' };
      case 'p': return { type: 'up' };
      case 'n': return { type: 'down' };
      default: return null;
    }
  }
  if (key.escape || key.tab) return null;
  if (key.meta && input === 'b') return { type: 'wordLeft' };
  if (key.meta && input === 'f') return { type: 'wordRight' };
  if (!input) return null;
  return { type: 'insert', text: input };
}

/**
 * One input event: the new state, and the text sent when it was a submit. Text that arrives in one
 * chunk with a final carriage return (typed fast, sent by a script, or pasted) is inserted and then
 * the return acts as Enter; returns inside the chunk are newlines.
 */
export function handleKey(s: EditorState, input: string, key: Key): { state: EditorState; submitted?: string } {
  if (!key.ctrl && !key.meta && !key.return && input.length > 1 && /[\r\n]/.test(input)) {
    // Before raw mode is on, the terminal turns the return into a newline: either ends the chunk as Enter.
    const enter = /[^\r\n][\r\n]$/.test(input);
    // A backslash before a return inside the chunk is a line continuation, as when typed.
    const body = (enter ? input.slice(0, -1) : input).replace(/\\[\r\n]/g, '\r');
    const st = body ? editorReducer(s, { type: 'insert', text: body }) : s;
    if (!enter) return { state: st };
    return handleKey(st, '\r', { ...key, return: true });
  }
  const a = keyAction(input, key, s);
  if (a === null) return { state: s };
  if (a === 'submit') return { state: editorReducer(s, { type: 'submitted', text: s.text }), submitted: s.text };
  return { state: editorReducer(s, a) };
}

export interface InputLineProps {
  onSubmit: (text: string) => void;
  history?: string[];
  prompt?: string;
  placeholder?: string;
  isActive?: boolean;
  /** Ctrl+C: the app decides (cancel, clear, quit); gets whether the input was empty. */
  onInterrupt?: (inputWasEmpty: boolean) => void;
  onEscape?: () => void;
  /** Ctrl+D on an empty line. */
  onEof?: () => void;
}

export function InputLine({ onSubmit, history = [], prompt = '› ', placeholder, isActive = true, onInterrupt, onEscape, onEof }: InputLineProps) {
  const [state, setState] = useState(() => emptyEditor(history));
  const stateRef = useRef(state);
  stateRef.current = state;
  useInput((input, key) => {
    const s = stateRef.current;
    if (key.ctrl && input === 'c') {
      const empty = s.text === '';
      if (!empty) {
        stateRef.current = editorReducer(s, { type: 'clear' });
        setState(stateRef.current);
      }
      onInterrupt?.(empty);
      return;
    }
    if (key.escape) {
      onEscape?.();
      return;
    }
    if (key.ctrl && input === 'd' && s.text === '') {
      onEof?.();
      return;
    }
    const r = handleKey(s, input, key);
    if (r.state === s) return;
    stateRef.current = r.state;
    setState(r.state);
    if (r.submitted !== undefined) onSubmit(r.submitted);
  }, { isActive });

  const lines = state.text.split('\n');
  let offset = 0;
  return (
    <Box flexDirection="column">
      {lines.map((line, i) => {
        const start = offset;
        offset += line.length + 1;
        const here = state.cursor >= start && state.cursor <= start + line.length;
        const lead = <Text color="cyan" bold>{i === 0 ? prompt : ' '.repeat(Math.max(0, prompt.length - 2)) + '… '}</Text>;
        if (i === 0 && state.text === '' && placeholder) {
          return <Text key={i}>{lead}<Text inverse> </Text><Text dimColor>{placeholder}</Text></Text>;
        }
        if (!here || !isActive) return <Text key={i}>{lead}{line}</Text>;
        const c = state.cursor - start;
        return (
          <Text key={i}>
            {lead}{line.slice(0, c)}<Text inverse>{line[c] ?? ' '}</Text>{line.slice(c + 1)}
          </Text>
        );
      })}
    </Box>
  );
}
