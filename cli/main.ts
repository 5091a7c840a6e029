// The `neuroscope` command line: a thin face over engine/ and tools/.
import { parseArgs } from 'node:util';
import { commands } from './commands.ts';

const USAGE = `neuroscope <command> [options]

Commands:
${Object.entries(commands).map(([n, c]) => `  ${n.padEnd(14)} ${c.summary}`).join('\n')}

Run "neuroscope <command> --help" for a command's options.`;

/** node's parseArgs messages in the CLI's words: what was wrong and which options the command takes. */
export function argumentError(name: string, options: Record<string, { type: string }>, err: Error & { code?: string }): string {
  const valid = Object.entries(options).map(([o, d]) => `--${o}${d.type === 'string' ? ' VALUE' : ''}`).join(', ') || 'none';
  const help = `(neuroscope ${name} --help)`;
  const opt = err.message.match(/'(-{1,2}[^' ]+)/)?.[1] ?? '';
  if (err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') return `unknown option ${opt}; ${name} takes: ${valid} ${help}`;
  if (err.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
    return /argument missing/.test(err.message) ? `option ${opt} needs a value, as in ${opt} VALUE ${help}` : `option ${opt} is a switch and takes no value; write ${opt} alone ${help}`;
  }
  return `${err.message} ${help}`;
}

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
    let parsed: ReturnType<typeof parseArgs>;
    try {
      parsed = parseArgs({ args: rest, options: { ...cmd.options, help: { type: 'boolean' } }, allowPositionals: true, strict: true });
    } catch (err) {
      console.error(`neuroscope ${name}: ${argumentError(name, cmd.options, err as Error)}`);
      return 2;
    }
    const { values, positionals } = parsed;
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
