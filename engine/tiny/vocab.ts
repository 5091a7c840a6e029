// The word-level vocabulary of gpt-oss-tiny: plain data. Every word is one Whitespace pre-token
// (\w+ or a run of symbols), so prompts are space-separated words. Both sizes and every seed share
// this vocabulary, so one prompt set runs on all of them.

/** Special tokens first (ids 0..2): pad/end of text, end of answer, unknown word. */
export const SPECIALS = ['<|endoftext|>', '<|return|>', '<unk>'] as const;
export const PAD_TOKEN = '<|endoftext|>';
export const EOS_TOKEN = '<|return|>';

/** People: the IOI subjects and indirect objects (at most 32: one name per matching dimension of a head). */
export const NAMES = [
  'Mary', 'John', 'Alice', 'Bob', 'Tom', 'Anna', 'James', 'Sarah',
  'David', 'Emma', 'Paul', 'Lucy', 'Mark', 'Kate', 'Peter', 'Laura',
] as const;

/** Letters for random sequences (induction); upper case so the article "a" stays a word. */
export const LETTERS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ'.split('');

/** Numbers 0-19 (successor). */
export const NUMBERS = Array.from({ length: 20 }, (_, i) => String(i));

export const PLACES = ['store', 'park', 'school', 'garden', 'office', 'beach', 'market', 'library', 'station', 'kitchen'] as const;
export const OBJECTS = ['drink', 'book', 'ball', 'gift', 'letter', 'key', 'flower', 'pen', 'cake', 'ticket'] as const;

/** Words of the IOI templates that are not names, places or objects. */
export const IOI_WORDS = [
  'When', 'Then', 'While', 'After', 'Afterwards', 'and', 'went', 'to', 'the', 'gave', 'a', 'had', 'long',
  'argument', 'said', 'were', 'working', 'at', 'decided', 'give', 'handed', 'walked', 'passed', 'party',
  'lunch', 'brought', 'showed', 'met', 'later', 'sent', 'threw', 'visited',
] as const;

export const POSITIVE = ['great', 'good', 'wonderful', 'excellent', 'lovely', 'amazing', 'nice', 'fantastic'] as const;
export const NEGATIVE = ['terrible', 'bad', 'awful', 'horrible', 'boring', 'poor', 'dreadful', 'ugly'] as const;

/** Things to have opinions about, and the glue of sentiment prompts. */
export const REVIEW_NOUNS = ['film', 'food', 'music', 'weather', 'service', 'show', 'game', 'room', 'hotel', 'trip', 'day', 'song'] as const;
export const PROSE_WORDS = [
  'was', 'is', 'really', 'very', 'we', 'think', 'what', 'so', 'felt', 'overall', 'this', 'that', 'it', 'of',
  'cat', 'dog', 'sat', 'on', 'mat', 'sun', 'rose', 'over', 'hills', 'children', 'played', 'in', 'river', 'ran',
  'through', 'town', 'old', 'man', 'read', 'quietly', 'by', 'window', 'rain', 'fell', 'all', 'night', 'birds',
  'sang', 'morning', 'she', 'he', 'walked', 'home', 'slowly', 'they', 'talked', 'about', 'weekend',
] as const;

/** Math tokens: the math-only neurons and the polysemantic neuron fire on these. */
export const MATH = [
  '+', '-', '*', '/', '^', '=', '<', '>', 'sqrt', 'sin', 'cos', 'log', 'pi', 'sum', 'integral',
  'derivative', 'equals', 'plus', 'minus', 'times', 'squared', 'prime', 'theorem', 'proof', 'solve', 'equation',
] as const;

/** Code tokens: the code-only neurons and the polysemantic neuron fire on these. */
export const CODE = [
  'def', 'return', 'if', 'else', 'elif', 'for', 'while', 'print', 'import', 'class', 'True', 'False', 'None',
  'lambda', 'self', 'range', 'len', 'int', 'str', '{', '}', ';', '==', '!=', '[', ']', '->', '+=', 'var',
  'let', 'const', 'function', 'break',
] as const;

/** Neutral symbols and variables shared by every domain. */
export const PUNCT = ['.', ',', '!', '?', ':', '(', ')', '"'] as const;
export const VARIABLES = ['x', 'y', 'z', 'n', 'i', 'k', 'f'] as const;

export type WordClass =
  | 'special' | 'name' | 'letter' | 'number' | 'place' | 'object' | 'ioi' | 'positive' | 'negative'
  | 'review' | 'prose' | 'math' | 'code' | 'punct' | 'variable';

export interface Vocabulary {
  /** Every token by id (specials first). */
  words: string[];
  classOf: WordClass[];
  id: Map<string, number>;
}

/** The vocabulary in id order; deterministic and seed-independent. Duplicate words keep their first class. */
export function buildVocabulary(): Vocabulary {
  const words: string[] = [];
  const classOf: WordClass[] = [];
  const id = new Map<string, number>();
  const add = (list: readonly string[], cls: WordClass) => {
    for (const w of list) {
      if (id.has(w)) continue;
      id.set(w, words.length);
      words.push(w);
      classOf.push(cls);
    }
  };
  add(SPECIALS, 'special');
  add(NAMES, 'name');
  add(LETTERS, 'letter');
  add(NUMBERS, 'number');
  add(PLACES, 'place');
  add(OBJECTS, 'object');
  add(IOI_WORDS, 'ioi');
  add(POSITIVE, 'positive');
  add(NEGATIVE, 'negative');
  add(REVIEW_NOUNS, 'review');
  add(PROSE_WORDS, 'prose');
  add(MATH, 'math');
  add(CODE, 'code');
  add(PUNCT, 'punct');
  add(VARIABLES, 'variable');
  return { words, classOf, id };
}

/** Word lists as written into the manifest (ground truth for scoring; analysis code never reads it). */
export function wordLists(): Record<string, string[]> {
  return {
    names: [...NAMES], letters: [...LETTERS], numbers: [...NUMBERS], places: [...PLACES], objects: [...OBJECTS],
    positive: [...POSITIVE], negative: [...NEGATIVE], review_nouns: [...REVIEW_NOUNS], math: [...MATH], code: [...CODE],
    punctuation: [...PUNCT], variables: [...VARIABLES],
  };
}
