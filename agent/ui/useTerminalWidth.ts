// The terminal's width, updated on resize (80 when stdout is not a terminal, at least 20).
import { useStdout } from 'ink';
import { useEffect, useState } from 'react';

/** Clear the visible screen (not the scrollback) and put the cursor home. */
export const CLEAR_VISIBLE = '\x1b[2J\x1b[H';

/**
 * `clearOnShrink` (the app's one caller): when the terminal narrows, Ink has already redrawn the
 * live part at the old width, which the terminal wraps onto extra rows; erasing that frame by its
 * line count would leave box fragments above. Clearing the visible screen first lets the frame at
 * the new width start clean (what was printed for good stays in the scrollback).
 */
export function useTerminalWidth(opts: { clearOnShrink?: boolean } = {}): number {
  const { stdout } = useStdout();
  const read = () => Math.max(20, (stdout as NodeJS.WriteStream | undefined)?.columns || 80);
  const [width, setWidth] = useState(read);
  useEffect(() => {
    if (!stdout || typeof stdout.on !== 'function') return;
    let last = read();
    const onResize = () => {
      const now = read();
      if (opts.clearOnShrink && now < last && (stdout as NodeJS.WriteStream).isTTY) stdout.write(CLEAR_VISIBLE);
      last = now;
      setWidth(now);
    };
    stdout.on('resize', onResize);
    return () => {
      stdout.off('resize', onResize);
    };
  }, [stdout]);
  return width;
}
