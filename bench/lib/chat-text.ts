// Chat-like text for the query scenario: words with Zipf frequencies (the most common English
// words first, then made-up words for the long tail), so the search index holds short lists for
// rare words and very long ones for "the". Seeded, so every run fills the same log.

/** English words by frequency, the head of the vocabulary. */
const COMMON_WORDS = (
  "the of and to a in is you that it he was for on are as with his they i at be this have from " +
  "or one had by word but not what all were we when your can said there use an each which she do " +
  "how their if will up other about out many then them these so some her would make like him into " +
  "time has look two more write go see number no way could people my than first water been call " +
  "who oil its now find long down day did get come made may part meeting tomorrow deploy build " +
  "review lunch coffee release ticket server thanks"
).split(" ");

const SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "ta", "shi", "po", "ve", "dan", "ter", "quo", "bel", "rin", "sa", "tho", "gra", "fen", "ix", "ul"];

/** A small fast PRNG (mulberry32): uniform in [0, 1). */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

export interface ChatTextOptions {
  /** Distinct words. */
  vocabulary: number;
  /** Words per message, uniform in [min, max]. */
  minWords: number;
  maxWords: number;
  seed: number;
}

/** Draws words (rank r with probability ∝ 1 / (r + 1)) and messages made of them. */
export class ChatText {
  readonly random: () => number;
  private readonly words: string[];
  private readonly cumulative: Float64Array;

  constructor(private readonly options: ChatTextOptions) {
    this.random = seededRandom(options.seed);
    this.words = COMMON_WORDS.slice(0, options.vocabulary);
    // Made-up words end in their rank in base 36, so they are all distinct.
    for (let rank = this.words.length; rank < options.vocabulary; rank++) {
      let word = "";
      const syllables = 2 + Math.floor(this.random() * 3);
      for (let i = 0; i < syllables; i++) word += SYLLABLES[Math.floor(this.random() * SYLLABLES.length)];
      this.words.push(word + rank.toString(36));
    }
    this.cumulative = new Float64Array(options.vocabulary);
    let total = 0;
    for (let rank = 0; rank < options.vocabulary; rank++) this.cumulative[rank] = total += 1 / (rank + 1);
    for (let rank = 0; rank < options.vocabulary; rank++) this.cumulative[rank]! /= total;
  }

  /** One word, as often as it occurs in the text. */
  word(): string {
    const u = this.random();
    let low = 0;
    let high = this.cumulative.length - 1;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (this.cumulative[mid]! < u) low = mid + 1;
      else high = mid;
    }
    return this.words[low]!;
  }

  message(): string {
    const { minWords, maxWords } = this.options;
    const count = minWords + Math.floor(this.random() * (maxWords - minWords + 1));
    let text = this.word();
    for (let i = 1; i < count; i++) text += " " + this.word();
    return text;
  }
}
