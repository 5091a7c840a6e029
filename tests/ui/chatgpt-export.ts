// A small ChatGPT data export (conversations.json) for the import tests.
/** A ChatGPT data export: two conversations; the first has an edited branch (current_node picks the last). */
export const CHATGPT_EXPORT = [
  {
    title: 'Induction heads explained',
    create_time: 1732530000.5,
    current_node: 'a2',
    mapping: {
      root: { id: 'root', message: null, parent: null, children: ['sys'] },
      sys: { id: 'sys', message: { author: { role: 'system' }, content: { content_type: 'text', parts: [''] } }, parent: 'root', children: ['u1'] },
      u1: { id: 'u1', message: { author: { role: 'user' }, content: { content_type: 'text', parts: ['What is an induction head?'] } }, parent: 'sys', children: ['a1'] },
      a1: { id: 'a1', message: { author: { role: 'assistant' }, content: { content_type: 'text', parts: ['An induction head attends to the token **after** an earlier copy of the current token.\n\n| head | role |\n|---|---|\n| L1.H4 | induction |'] } }, parent: 'u1', children: ['u2old', 'u2'] },
      u2old: { id: 'u2old', message: { author: { role: 'user' }, content: { content_type: 'text', parts: ['an abandoned branch'] } }, parent: 'a1', children: [] },
      u2: { id: 'u2', message: { author: { role: 'user' }, content: { content_type: 'text', parts: ['Show code'] } }, parent: 'a1', children: ['t1'] },
      t1: { id: 't1', message: { author: { role: 'assistant' }, recipient: 'python', content: { content_type: 'code', language: 'python', text: 'print(1+1)' } }, parent: 'u2', children: ['t2'] },
      t2: { id: 't2', message: { author: { role: 'tool', name: 'python' }, content: { content_type: 'execution_output', text: '2' } }, parent: 't1', children: ['a2'] },
      a2: { id: 'a2', message: { author: { role: 'assistant' }, content: { content_type: 'text', parts: ['The code printed 2.'] } }, parent: 't2', children: [] },
    },
  },
  {
    title: 'Second chat',
    create_time: 1732616400,
    mapping: {
      r: { id: 'r', message: null, parent: null, children: ['u'] },
      u: { id: 'u', message: { author: { role: 'user' }, content: { content_type: 'text', parts: ['Hello'] } }, parent: 'r', children: ['a'] },
      a: { id: 'a', message: { author: { role: 'assistant' }, content: { content_type: 'text', parts: ['Hi there'] } }, parent: 'u', children: [] },
    },
  },
];
