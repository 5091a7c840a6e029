// The terminal's width, updated on resize (80 when stdout is not a terminal, at least 20).
import { useStdout } from 'ink';
import { useEffect, useState } from 'react';

export function useTerminalWidth(): number {
  const { stdout } = useStdout();
  const read = () => Math.max(20, (stdout as NodeJS.WriteStream | undefined)?.columns || 80);
  const [width, setWidth] = useState(read);
  useEffect(() => {
    if (!stdout || typeof stdout.on !== 'function') return;
    const onResize = () => setWidth(read());
    stdout.on('resize', onResize);
    return () => {
      stdout.off('resize', onResize);
    };
  }, [stdout]);
  return width;
}
