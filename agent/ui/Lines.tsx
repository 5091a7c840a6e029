// Draws laid-out lines (see text.ts) with Ink; each line is cut, never re-wrapped, so a layout made
// for one width stays readable when the terminal shrinks.
import { Box, Text } from 'ink';
import React from 'react';
import { renderMarkdown } from './markdown.ts';
import type { Line, Span } from './text.ts';

export function SpanText({ span }: { span: Span }) {
  return (
    <Text bold={span.bold} italic={span.italic} underline={span.underline} strikethrough={span.strike} dimColor={span.dim}
      inverse={span.inverse} color={span.color} backgroundColor={span.bg}>{span.text}</Text>
  );
}

export function Lines({ lines }: { lines: Line[] }) {
  return (
    <Box flexDirection="column">
      {lines.map((line, i) => (
        <Text key={i} wrap="truncate-end">{line.length === 0 ? ' ' : line.map((s, j) => <SpanText key={j} span={s} />)}</Text>
      ))}
    </Box>
  );
}

export function Markdown({ text, width }: { text: string; width: number }) {
  const lines = React.useMemo(() => renderMarkdown(text, width), [text, width]);
  return <Lines lines={lines} />;
}
