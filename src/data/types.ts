// Types shared by the data pipeline: text file -> examples -> token arrays -> packed sequences -> batches.

/**
 * The least the pipeline needs from a tokenizer (src/loaders/tokenizer.ts's TextTokenizer satisfies it).
 * `encode(text, true)` adds what the tokenizer's post-processor adds (e.g. Llama's BOS).
 */
export interface TextTokenizer {
  encode(text: string, addSpecial: boolean): number[];
  decode(ids: number[]): string;
  bosId: number | null;
  eosId: number | null;
  chatTemplate: string | null;
  /** Where chatTemplate came from (chat_template.jinja or tokenizer_config.json), for error messages. */
  chatTemplateFile?: string | null;
  /** Strings of the special tokens a chat template may use, e.g. { bos_token: '<s>' }. */
  specialTokens?: Record<string, string>;
  /**
   * The control tokens' strings (tokenizer.json's added tokens with "special": true, e.g. <|im_end|>,
   * <|eot_id|>, <end_of_turn>): a chat template's markers; the first after a reply ends its turn.
   */
  controlTokens?: readonly string[];
}

/** A piece of an example's text and whether the model is trained to produce it. */
export interface Segment {
  text: string;
  train: boolean;
}

/**
 * One training example. The model sees `prompt` then `completion`; the loss is only on the completion.
 * Plain text has prompt ''. Multi-turn chat carries `segments` (the whole rendered conversation in order,
 * assistant turns with train = true); then prompt/completion are only a preview (text before the first
 * assistant turn / everything from it on).
 */
export interface Example {
  prompt: string;
  completion: string;
  segments?: Segment[];
  /** false when the text already holds the special tokens (a rendered chat template); default true. */
  addSpecial?: boolean;
  /**
   * false when packing must not end the example with EOS: a chat rendered by its template closes its
   * turns itself (TRL's SFT trainer adds no EOS to conversational examples either); default true.
   */
  eos?: boolean;
}

/** A dataset that cannot be used; the message says what is wrong and what to do. */
export class DatasetError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DatasetError';
  }
}
