// The `neuroscope` command line: a thin face over engine/ and tools/.
import { parseArgs } from 'node:util';
import { commands } from './commands.ts';

const USAGE = `neuroscope <command> [options]

Commands:
${Object.entries(commands).map(([n, c]) => `  ${n.padEnd(14)} ${c.summary}`).join('\n')}

Run "neuroscope <command> --help" for a command's options.`;

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(USAGE);
    return name ? 0 : 1;
  }
  const cmd = commands[name];
  if (!cmd) {
    console.error(`unknown command "${name}"\n\n${USAGE}`);
    return 2;
  }
  try {
    if (cmd.passthrough) return await cmd.run({}, rest);
    const { values, positionals } = parseArgs({ args: rest, options: { ...cmd.options, help: { type: 'boolean' } }, allowPositionals: true, strict: true });
    if (values.help) {
      console.log(`neuroscope ${name} ${cmd.usage}\n\n${cmd.summary}`);
      return 0;
    }
    return await cmd.run(values as Record<string, string | boolean | undefined>, positionals);
  } catch (err) {
    console.error(`neuroscope ${name}: ${(err as Error).message}`);
    return 1;
  }
}
