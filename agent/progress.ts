// Terminal progress for the CLI and the agent: a redrawn bar on a TTY, plain lines otherwise (logs, CI).
export function progressPrinter(stream: NodeJS.WriteStream = process.stderr) {
  const tty = stream.isTTY;
  let last = '';
  return {
    step(label: string, done: number, total: number, message: string) {
      const width = 24;
      const filled = Math.round((done / Math.max(total, 1)) * width);
      const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total}`;
      const text = `${bar} ${label}: ${message}`;
      if (tty) stream.write(`\r\x1b[2K${text.slice(0, (stream.columns ?? 120) - 1)}`);
      else if (text !== last) stream.write(`${text}\n`);
      last = text;
    },
    done() {
      if (tty) stream.write('\n');
    },
  };
}
