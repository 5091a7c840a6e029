// The terminal chat: finished items are printed once into the terminal's own scrollback (Ink's
// <Static>), so long sessions stay fast and resizing never garbles history; below them the live part:
// the running tool card or streaming reply, a status line (model, store, LLM, what is running) and
// the input line.
import { Box, Static, Text, useApp } from 'ink';
import React, { useEffect, useRef, useState, useSyncExternalStore } from 'react';
import type { ChatController, ChatItem, ChatStatus } from './controller.ts';
import { InputLine } from './InputLine.tsx';
import { Lines, Markdown } from './Lines.tsx';
import { renderMarkdown } from './markdown.ts';
import { ToolCard } from './ToolCard.tsx';
import { useTerminalWidth } from './useTerminalWidth.ts';

const workspaceText = (s: ChatStatus) => (s.workspace === 'opening' ? 'opening…' : s.workspace === 'ready' ? (s.model ?? '?') : `error: ${s.workspace.error}`);

export function Header({ status, width }: { status: ChatStatus; width: number }) {
  return (
    <Box borderStyle="round" borderColor="magenta" flexDirection="column" paddingX={1} width={Math.max(20, Math.min(width, 100))}>
      <Text><Text bold color="magentaBright">NeuroScope</Text><Text dimColor> · mechanistic interpretability of gpt-oss</Text></Text>
      {/* The model's error and the LLM line (how to configure one) wrap: their ends are what to do. */}
      <Box><Box width={6} flexShrink={0}><Text color="cyan">model</Text></Box><Text>{workspaceText(status)}</Text></Box>
      <Text wrap="truncate-end"><Text color="cyan">store </Text>{status.store}</Text>
      <Box><Box width={6} flexShrink={0}><Text color="cyan">LLM</Text></Box><Text>{status.llm}</Text></Box>
      <Text wrap="truncate-end" dimColor>session {status.session} · /help for commands · /patch to start</Text>
    </Box>
  );
}

export function ItemView({ item, status, width }: { item: ChatItem; status: ChatStatus; width: number }) {
  switch (item.kind) {
    case 'banner':
      return <Header status={status} width={width} />;
    case 'user':
      return (
        <Box marginTop={1}>
          <Text color="cyan" bold>❯ </Text>
          <Text bold>{item.text}</Text>
        </Box>
      );
    case 'assistant': {
      const lines = renderMarkdown(item.text + (item.streaming ? ' ▌' : ''), Math.max(10, width - 2));
      return (
        <Box marginLeft={2} flexDirection="column">
          <Lines lines={lines} />
        </Box>
      );
    }
    case 'tool':
      return <ToolCard call={item.call} width={Math.max(20, width - 1)} />;
    case 'note': {
      const color = item.tone === 'error' ? 'red' : item.tone === 'success' ? 'green' : 'gray';
      return (
        <Box borderStyle="single" borderLeft borderRight={false} borderTop={false} borderBottom={false} borderColor={color} paddingLeft={1} flexDirection="column">
          <Markdown text={item.text} width={Math.max(10, width - 3)} />
        </Box>
      );
    }
  }
}

/** Items printed for good: the longest prefix whose items are finished. */
export function splitFinished(items: ChatItem[], status: ChatStatus): { done: ChatItem[]; live: ChatItem[] } {
  let k = 0;
  for (; k < items.length; k++) {
    const it = items[k];
    const finished = it.kind === 'banner' ? status.workspace !== 'opening'
      : it.kind === 'assistant' ? !it.streaming
        : it.kind === 'tool' ? it.call.status !== 'running' : true;
    if (!finished) break;
  }
  return { done: items.slice(0, k), live: items.slice(k) };
}

/** What the chat can do now: "ready" only once the workspace is open. */
function StateDot({ status }: { status: ChatStatus }) {
  if (status.busy) return <Text color="yellow">● {status.busy} running (Esc cancels) </Text>;
  if (status.workspace === 'opening') return <Text color="yellow">● opening </Text>;
  if (status.workspace !== 'ready') return <Text color="red">● not open </Text>;
  return <Text color="green">● ready </Text>;
}

export function StatusLine({ status }: { status: ChatStatus }) {
  const llm = status.llm.startsWith('none') ? 'no LLM' : status.llm;
  return (
    <Text wrap="truncate-end" dimColor>
      <StateDot status={status} />
      · {workspaceText(status)} · {llm}
    </Text>
  );
}

export interface AppProps {
  controller: ChatController;
  history?: string[];
  onHistory?: (entry: string) => void;
}

export function App({ controller, history = [], onHistory }: AppProps) {
  const snap = useSyncExternalStore(controller.subscribe, controller.getSnapshot);
  const width = useTerminalWidth({ clearOnShrink: true });
  const { exit } = useApp();
  const [hint, setHint] = useState<string | null>(null);
  const lastInterrupt = useRef(0);

  useEffect(() => {
    if (snap.exiting) exit();
  }, [snap.exiting]);
  useEffect(() => {
    if (snap.status.busy === null) setHint((h) => (h === 'cancelling…' ? null : h));
  }, [snap.status.busy]);

  const { done, live } = splitFinished(snap.items, snap.status);
  const submit = (text: string) => {
    setHint(null);
    if (text.trim()) onHistory?.(text);
    void controller.submit(text);
  };
  const interrupt = (empty: boolean) => {
    if (controller.cancel()) {
      setHint('cancelling…');
      return;
    }
    if (!empty) return;
    const now = Date.now();
    if (now - lastInterrupt.current < 2000) controller.quit();
    else {
      lastInterrupt.current = now;
      setHint('press Ctrl+C again to quit (the session is saved)');
    }
  };

  return (
    <>
      <Static key={snap.epoch} items={done}>
        {(item) => (
          <Box key={item.id} flexDirection="column">
            <ItemView item={item} status={snap.status} width={width} />
          </Box>
        )}
      </Static>
      <Box flexDirection="column">
        {live.map((item) => <ItemView key={item.id} item={item} status={snap.status} width={width} />)}
        {!snap.exiting && (
          <Box flexDirection="column" marginTop={1}>
            <StatusLine status={snap.status} />
            <InputLine
              onSubmit={submit}
              history={history}
              placeholder={snap.status.llm.startsWith('none') ? 'a /command (try /patch or /help)' : 'ask a question, or a /command'}
              onInterrupt={interrupt}
              onEscape={() => {
                if (controller.cancel()) setHint('cancelling…');
              }}
              onEof={() => controller.quit()}
            />
            <Text dimColor wrap="truncate-end">{hint ?? 'Enter send · Alt+Enter or \\ newline · ↑↓ history · Esc cancel · /help'}</Text>
          </Box>
        )}
      </Box>
    </>
  );
}
