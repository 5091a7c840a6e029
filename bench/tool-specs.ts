// Size of the tool list an MCP client (and the agent) reads: characters of JSON per tool and in
// all, split into descriptions, input schemas and output schemas. No timing: a count.
//   npx tsx bench/tool-specs.ts
import { inputJsonSchema, outputJsonSchema } from '../mcp-server/server.ts';
import { TOOLS } from '../tools/index.ts';

const size = (x: unknown) => JSON.stringify(x).length;
let [desc, input, output] = [0, 0, 0];
const rows = TOOLS.map((t) => {
  const r = { name: t.name, description: t.description.length, input: size(inputJsonSchema(t)), output: size(outputJsonSchema(t)) };
  desc += r.description;
  input += r.input;
  output += r.output;
  return r;
});
const all = size(TOOLS.map((t) => ({ name: t.name, description: t.description, inputSchema: inputJsonSchema(t), outputSchema: outputJsonSchema(t) })));
for (const r of rows.sort((a, b) => b.input + b.output + b.description - a.input - a.output - a.description)) {
  console.log(`${r.name.padEnd(26)} description ${String(r.description).padStart(5)}  input ${String(r.input).padStart(6)}  output ${String(r.output).padStart(6)}`);
}
const llm = size(TOOLS.map((t) => ({ name: t.name, description: t.description, parameters: inputJsonSchema(t) })));
console.log(`${TOOLS.length} tools: ${all} characters of JSON (descriptions ${desc}, input schemas ${input}, output schemas ${output}); as LLM function specs (name, description, parameters): ${llm}`);
