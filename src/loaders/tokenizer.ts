// The model's tokenizer: a thin wrapper over @huggingface/tokenizers (tokenizer.json + tokenizer_config.json).

import { Tokenizer } from '@huggingface/tokenizers';

export class TokenizerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TokenizerError';
  }
}

type Json = Record<string, unknown>;

/** tokenizer_config.json writes special tokens as a string or as {"content": ..., "__type": "AddedToken"}. */
function tokenContent(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as Json).content === 'string') return (v as Json).content as string;
  return null;
}

/** The largest token id tokenizer.json can produce (model vocab and added tokens), or -1 if none. */
/** The largest id of the base vocabulary alone (model.vocab), without added tokens. */
export function maxBaseTokenId(tokenizerJson: unknown): number {
  return maxTokenId({ model: ((tokenizerJson ?? {}) as Json).model });
}

export function maxTokenId(tokenizerJson: unknown): number {
  const j = tokenizerJson as Json;
  let max = -1;
  const model = (j?.model ?? {}) as Json;
  const vocab = model.vocab;
  if (Array.isArray(vocab))
    max = vocab.length - 1; // Unigram: [[piece, score], ...], id = index
  else if (vocab && typeof vocab === 'object') {
    for (const id of Object.values(vocab as Json)) if (typeof id === 'number' && id > max) max = id;
  }
  for (const t of (Array.isArray(j?.added_tokens) ? j.added_tokens : []) as Json[]) {
    if (typeof t?.id === 'number' && t.id > max) max = t.id;
  }
  return max;
}

/**
 * Picks the default chat template: a string, or the one named "default" in a list of {name, template}.
 * An empty (or whitespace-only) template is no template: it would render every conversation as nothing.
 */
function chatTemplateOf(cfg: Json, override: string | null): string | null {
  const given = (s: unknown): s is string => typeof s === 'string' && s.trim() !== '';
  if (given(override)) return override;
  const t = cfg.chat_template;
  if (given(t)) return t;
  if (Array.isArray(t)) {
    const d = t.find((x) => x && (x as Json).name === 'default') as Json | undefined;
    if (d && given(d.template)) return d.template;
  }
  return null;
}

export class TextTokenizer {
  readonly bosId: number | null;
  readonly eosId: number | null;
  /** One more than the largest id the tokenizer can emit (what the embedding must cover). */
  readonly vocabSize: number;
  readonly chatTemplate: string | null;
  /** The file the chat template came from, or null when there is none. */
  readonly chatTemplateFile: string | null;
  /** The strings of tokenizer.json's added tokens marked "special" (chat markers such as <|im_end|>). */
  readonly controlTokens: readonly string[];
  private readonly tok: Tokenizer;

  /**
   * `tokenizerJson` is tokenizer.json, `tokenizerConfig` tokenizer_config.json ({} if the repo has none),
   * `chatTemplate` a separate chat_template.jinja if the repo ships one (it overrides the config's).
   */
  /**
   * `embeddingRows`: the model's vocab_size. A tokenizer may list added tokens past it (Gemma 3's
   * `<image_soft_token>` is id 262,144 of a 262,144-row embedding, as in the real checkpoints): they load,
   * and encode refuses text that produces one, since the model has no row for it.
   */
  constructor(
    tokenizerJson: unknown,
    tokenizerConfig: unknown = {},
    chatTemplate: string | null = null,
    readonly embeddingRows = Infinity,
  ) {
    if (!tokenizerJson || typeof tokenizerJson !== 'object' || !(tokenizerJson as Json).model) {
      throw new TokenizerError('tokenizer.json has no "model" section; it is not a Hugging Face fast-tokenizer file');
    }
    const cfg = (tokenizerConfig && typeof tokenizerConfig === 'object' ? tokenizerConfig : {}) as Json;
    // The library iterates added_tokens unconditionally; older files may omit it.
    const tj = { added_tokens: [], ...(tokenizerJson as Json) };
    try {
      this.tok = new Tokenizer(tj, cfg);
    } catch (e) {
      throw new TokenizerError(
        `tokenizer.json could not be loaded by @huggingface/tokenizers: ${(e as Error).message}`,
      );
    }
    this.vocabSize = maxTokenId(tokenizerJson) + 1;
    this.controlTokens = (Array.isArray(tj.added_tokens) ? (tj.added_tokens as Json[]) : [])
      .filter((t) => t?.special === true && typeof t.content === 'string' && t.content !== '')
      .map((t) => t.content as string);
    const idOf = (k: string) => {
      const c = tokenContent(cfg[k]);
      return c === null ? null : (this.tok.token_to_id(c) ?? null);
    };
    this.bosId = idOf('bos_token');
    this.eosId = idOf('eos_token');
    this.chatTemplate = chatTemplateOf(cfg, chatTemplate);
    this.chatTemplateFile =
      this.chatTemplate === null
        ? null
        : this.chatTemplate === chatTemplate
          ? 'chat_template.jinja'
          : 'tokenizer_config.json';
  }

  /** Text -> token ids; `addSpecial` adds what the post-processor adds (e.g. Llama's BOS). */
  encode(text: string, addSpecial = true): number[] {
    const ids = this.tok.encode(text, { add_special_tokens: addSpecial }).ids;
    for (const id of ids)
      if (id >= this.embeddingRows)
        throw new TokenizerError(
          `the text contains the token ${JSON.stringify(this.idToToken(id))} (id ${id}), which the model's embedding (${this.embeddingRows} rows, vocab_size) has no row for; remove it from the data`,
        );
    return ids;
  }

  /** Token ids -> text. No clean-up of spaces (it breaks round trips). */
  decode(ids: ArrayLike<number>, skipSpecial = false): string {
    if (ids.length === 0) return ''; // the library throws on an empty list
    return this.tok.decode(Array.from(ids), { skip_special_tokens: skipSpecial, clean_up_tokenization_spaces: false });
  }

  /** The token string for an id (undefined if out of range). */
  idToToken(id: number): string | undefined {
    return this.tok.id_to_token(id);
  }

  tokenToId(token: string): number | undefined {
    return this.tok.token_to_id(token);
  }
}
