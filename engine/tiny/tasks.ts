// Prompt sets of gpt-oss-tiny: templates and fixed prompts (plain data) and the seeded generator that
// fills them. Every prompt is space-separated vocabulary words and stays within the sliding window.
import { Rng } from '../rng.ts';
import type { TaskExample } from './manifest.ts';
import { LETTERS, NAMES, NEGATIVE, OBJECTS, PLACES, POSITIVE, REVIEW_NOUNS } from './vocab.ts';

/** IOI templates: [A] and [B] are the two names in order of first mention, [S] is the repeated subject,
 *  the answer is the other one (the indirect object). */
export const IOI_TEMPLATES = [
  'When [A] and [B] went to the [PLACE] , [S] gave a [OBJECT] to',
  'Then , [A] and [B] had a long argument . Afterwards [S] said to',
  'While [A] and [B] were working at the [PLACE] , [S] handed the [OBJECT] to',
  'After the party , [A] and [B] walked to the [PLACE] . [S] passed a [OBJECT] to',
  'When [A] and [B] met at the [PLACE] , [S] showed the [OBJECT] to',
  '[A] and [B] went to the [PLACE] . Then [S] decided to give a [OBJECT] to',
  'After lunch , [A] and [B] visited the [PLACE] . Afterwards [S] brought a [OBJECT] to',
  'When [A] and [B] were at the [PLACE] , [S] threw the [OBJECT] to',
] as const;

/** Sentiment templates: [ADJ] carries the context's polarity; the next word should share it. */
export const SENTIMENT_TEMPLATES = [
  'the [N1] was [ADJ] and the [N2] was',
  'we think the [N1] is [ADJ] . the [N2] is',
  'what a [ADJ] [N1] ! the [N2] was',
  'overall the [N1] felt [ADJ] , and the [N2] was really',
  'this [N1] is so [ADJ] . it was',
  'the [N1] was very [ADJ] . so the [N2] was',
] as const;

/** Domain prompts for entanglement: math prompts use no code tokens and code prompts no math tokens. */
export const DOMAIN_PROMPTS = {
  math: [
    '3 + 4 = 7',
    '12 - 5 = 7',
    'x ^ 2 + y ^ 2 = z ^ 2',
    'sqrt ( 16 ) = 4',
    'the derivative of sin x equals cos x',
    'solve the equation 2 * x + 3 = 11',
    'the sum of 1 plus 2 equals 3',
    'log ( x * y ) = log x + log y',
    'the theorem : 7 is prime',
    'integral of x squared is x ^ 3 / 3',
  ],
  code: [
    'def f ( x ) : return x',
    'for i in range ( 10 ) : print ( i )',
    'if x == 0 : return None',
    'while True : break',
    'class k : def len ( self ) -> int',
    'import str ; print ( len ( x ) )',
    'if n != 0 : k += 1 else : return False',
    'lambda x : [ x , y ]',
    'var x ; let y ; const z ;',
    'function f ( n ) { return n ; }',
  ],
  prose: [
    'the cat sat on the mat',
    'the sun rose over the hills',
    'children played in the river',
    'the old man read quietly by the window',
    'rain fell all night',
    'birds sang in the morning',
    'she walked home slowly',
    'they talked about the weekend',
    'the dog ran through the town',
    'he read by the window all morning',
  ],
};

export interface GeneratedTasks {
  ioi: TaskExample[];
  induction: TaskExample[];
  successor: TaskExample[];
  sentiment: TaskExample[];
  contrast: { positive: string[]; negative: string[] };
  domains: { math: string[]; code: string[]; prose: string[] };
}

export interface TaskCounts { ioiPerTemplate: number; induction: number; successor: number; sentimentPerPolarity: number; contrastPairs: number; domainPrompts: number }
export const TASK_COUNTS: TaskCounts = { ioiPerTemplate: 3, induction: 8, successor: 16, sentimentPerPolarity: 8, contrastPairs: 8, domainPrompts: 10 };
/** tiny-l (24 layers) keeps its build check to seconds with fewer prompts per task. */
export const TASK_COUNTS_LARGE: TaskCounts = { ioiPerTemplate: 1, induction: 4, successor: 8, sentimentPerPolarity: 4, contrastPairs: 8, domainPrompts: 5 };

const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[rng.int(xs.length)];

/** Deterministic prompt sets for a seed (the same seed as the model, so each seed is tested on its own prompts). */
export function generateTasks(seed: number, counts: TaskCounts = TASK_COUNTS): GeneratedTasks {
  const rng = new Rng((seed * 7919 + 104729) >>> 0);

  const ioi: TaskExample[] = [];
  for (const template of IOI_TEMPLATES) {
    for (let k = 0; k < counts.ioiPerTemplate; k++) {
      const [io, s] = rng.shuffle(NAMES).slice(0, 2);
      const abba = (k + ioi.length) % 2 === 0; // alternate which name is mentioned first
      const fill = template
        .replace('[A]', abba ? io : s)
        .replace('[B]', abba ? s : io)
        .replace('[S]', s)
        .replace('[PLACE]', pick(rng, PLACES))
        .replace('[OBJECT]', pick(rng, OBJECTS));
      ioi.push({ prompt: fill, target: io, distractor: s });
    }
  }

  const induction: TaskExample[] = [];
  for (let k = 0; k < counts.induction; k++) {
    const n = 8 + (k % 5); // 8..12 letters, repeated: at most 23 tokens
    const seq = rng.shuffle(LETTERS).slice(0, n);
    const prompt = [...seq, ...seq.slice(0, n - 1)];
    induction.push({ prompt: prompt.join(' '), target: seq[n - 1], distractor: seq[n - 2] });
  }

  const successor: TaskExample[] = [];
  for (let k = 0; k < counts.successor; k++) {
    const len = 3 + rng.int(4); // 3..6 numbers
    const start = rng.int(19 - len + 1); // last number <= 18 so the successor is in the vocabulary
    const seq = Array.from({ length: len }, (_, i) => String(start + i));
    const last = start + len - 1;
    successor.push({ prompt: seq.join(' '), target: String(last + 1), distractor: String(last) });
  }

  const fillSentiment = (template: string, adj: string, n1: string, n2: string) =>
    template.replace('[ADJ]', adj).replace('[N1]', n1).replace('[N2]', n2);
  const sentiment: TaskExample[] = [];
  for (let k = 0; k < 2 * counts.sentimentPerPolarity; k++) {
    const positive = k % 2 === 0;
    const [n1, n2] = rng.shuffle(REVIEW_NOUNS).slice(0, 2);
    const template = SENTIMENT_TEMPLATES[Math.floor(k / 2) % SENTIMENT_TEMPLATES.length];
    const adj = pick(rng, positive ? POSITIVE : NEGATIVE);
    sentiment.push({
      prompt: fillSentiment(template, adj, n1, n2),
      target: pick(rng, positive ? POSITIVE : NEGATIVE),
      distractor: pick(rng, positive ? NEGATIVE : POSITIVE),
    });
  }
  const contrast = { positive: [] as string[], negative: [] as string[] };
  for (let k = 0; k < counts.contrastPairs; k++) {
    const [n1, n2] = rng.shuffle(REVIEW_NOUNS).slice(0, 2);
    const template = SENTIMENT_TEMPLATES[k % SENTIMENT_TEMPLATES.length];
    contrast.positive.push(fillSentiment(template, pick(rng, POSITIVE), n1, n2));
    contrast.negative.push(fillSentiment(template, pick(rng, NEGATIVE), n1, n2));
  }

  return {
    ioi, induction, successor, sentiment, contrast,
    domains: {
      math: DOMAIN_PROMPTS.math.slice(0, counts.domainPrompts),
      code: DOMAIN_PROMPTS.code.slice(0, counts.domainPrompts),
      prose: DOMAIN_PROMPTS.prose.slice(0, counts.domainPrompts),
    },
  };
}
