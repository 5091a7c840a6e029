// Text from the model is data the agent did not make: a misbehaving model may send hundreds of
// thousands of characters, or stop mid-sentence at its output limit (finish_reason "length").
// Before such text is stored, sent back in later prompts, or written into a finding, it is clipped
// with a note, and a truncated reply is marked as such.
import type { Completion } from './llm/types.ts';

/** A whole reply (a chat answer, an experiment summary, a conclusion). */
export const MAX_REPLY_CHARS = 32_000;
/** One field of a structured reply (a hypothesis, a result, a reason). */
export const MAX_FIELD_CHARS = 4_000;

export const TRUNCATED_NOTE = "(truncated: the reply hit the model's output limit)";

/** Clipped model text: the head and a note saying how long the text was. */
export function clipModelText(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}\n… (clipped: the model wrote ${text.length.toLocaleString('en-US')} characters; ${max.toLocaleString('en-US')} are kept)`;
}

/** A reply's text as it may be kept, and notes for people on what was done to it. */
export function replyText(c: Pick<Completion, 'content' | 'finishReason'>, max = MAX_REPLY_CHARS): { text: string; notes: string[] } {
  const notes: string[] = [];
  let text = clipModelText(c.content, max);
  if (text !== c.content) notes.push(`the reply had ${c.content.length.toLocaleString('en-US')} characters; clipped to ${max.toLocaleString('en-US')}`);
  if (c.finishReason === 'length') {
    text = text ? `${text}\n${TRUNCATED_NOTE}` : '';
    notes.push('the reply hit the output limit (finish_reason "length"); it is marked truncated');
  }
  return { text, notes };
}
