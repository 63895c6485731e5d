// Chat rendering through real Jinja templates: the rendered text and which spans carry the loss.

import { describe, expect, it } from 'vitest';
import { chatContextOf, renderChat, type ChatMessage } from '../../src/data/chat';
import { parseExamples } from '../../src/data/formats';
import { DatasetError } from '../../src/data/types';
import { charTokenizer } from './chartok';

// SmolLM2-Instruct's template (tokenizer_config.json "chat_template"), verbatim.
const SMOLLM_TEMPLATE =
  "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

// The bundled model's plain-text template (tools/sp_to_tokenizer_json.py).
const BUNDLED_TEMPLATE =
  "{{ bos_token }}{% for message in messages %}{{ message['role'] | capitalize }}: {{ message['content'] }}\n{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}";

const convo: ChatMessage[] = [
  { role: 'user', content: 'Hi there' },
  { role: 'assistant', content: 'Hello!' },
  { role: 'user', content: 'Bye' },
  { role: 'assistant', content: 'See you.' },
];

describe('renderChat', () => {
  it('renders a ChatML template and trains each assistant turn through <|im_end|>\\n', () => {
    const segs = renderChat(convo, { template: SMOLLM_TEMPLATE, specialTokens: {} });
    const sys = '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n';
    expect(segs).toEqual([
      { text: sys + '<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n', train: false },
      { text: 'Hello!<|im_end|>\n', train: true },
      { text: '<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n', train: false },
      { text: 'See you.<|im_end|>\n', train: true },
    ]);
  });

  it("with the tokenizer's control tokens, trains each turn through its end-of-turn token and no further", () => {
    const ctx = { template: SMOLLM_TEMPLATE, specialTokens: {}, controlTokens: ['<|im_start|>', '<|im_end|>'] };
    const sys = '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n';
    expect(renderChat(convo, ctx)).toEqual([
      { text: sys + '<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n', train: false },
      { text: 'Hello!<|im_end|>', train: true },
      { text: '\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n', train: false },
      { text: 'See you.<|im_end|>', train: true },
      { text: '\n', train: false },
    ]);
  });

  it('a template that rewrites earlier turns (Qwen3-style <think>) still trains every turn with its end marker', () => {
    // Like Qwen3's: only the reply after the last user turn gets an (empty) <think> block, so rendering a
    // prefix of the chat does not give a prefix of the whole; the last turn still starts after the
    // generation prompt (its <think> block is trained), the earlier one at its content.
    const t =
      "{% set ns = namespace(last=0) %}{% for m in messages %}{% if m.role == 'user' %}{% set ns.last = loop.index0 %}{% endif %}{% endfor %}" +
      "{% for m in messages %}{{ '<|im_start|>' + m.role + '\n' }}{% if m.role == 'assistant' and loop.index0 > ns.last %}{{ '<think></think>' }}{% endif %}{{ m.content + '<|im_end|>\n' }}{% endfor %}" +
      "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
    const ctx = { template: t, specialTokens: {}, controlTokens: ['<|im_start|>', '<|im_end|>'] };
    expect(renderChat(convo, ctx)).toEqual([
      { text: '<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n', train: false },
      { text: 'Hello!<|im_end|>', train: true },
      { text: '\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n', train: false },
      { text: '<think></think>See you.<|im_end|>', train: true },
      { text: '\n', train: false },
    ]);
  });

  it('fills bos_token from the tokenizer and trains " reply\\n" after "Assistant:"', () => {
    const tok = charTokenizer({ chatTemplate: BUNDLED_TEMPLATE });
    const segs = renderChat(convo.slice(0, 2), chatContextOf(tok));
    expect(segs).toEqual([
      { text: '<s>User: Hi there\nAssistant:', train: false },
      { text: ' Hello!\n', train: true },
    ]);
  });

  it('decodes the special-token strings from the ids when the tokenizer does not list them', () => {
    const tok = { ...charTokenizer(), specialTokens: undefined };
    expect(chatContextOf(tok).specialTokens).toEqual({ bos_token: '<s>', eos_token: '</s>' });
  });

  it('falls back to the assistant contents when the template is not prefix-consistent', () => {
    // This template closes the conversation with a footer, so prefixes of the rendering differ.
    const t =
      "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}{% if not add_generation_prompt %}-- end{% endif %}";
    const segs = renderChat(convo, { template: t, specialTokens: {} });
    expect(segs).toEqual([
      { text: '[user] Hi there\n[assistant] ', train: false },
      { text: 'Hello!', train: true },
      { text: '\n[user] Bye\n[assistant] ', train: false },
      { text: 'See you.', train: true },
      { text: '\n-- end', train: false },
    ]);
  });

  it('reports a template that does not parse or does not contain the replies', () => {
    expect(() => renderChat(convo, { template: '{% for m in messages %}', specialTokens: {} })).toThrow(DatasetError);
    expect(() => renderChat(convo, { template: '{{ messages | length }} messages', specialTokens: {} })).toThrow(
      /does not reproduce the assistant messages/,
    );
  });

  it('chat JSONL through the tokenizer template is marked addSpecial = false (the template writes BOS)', () => {
    const tok = charTokenizer({ chatTemplate: BUNDLED_TEMPLATE });
    const line = JSON.stringify({ messages: convo.slice(0, 2) });
    const [ex] = parseExamples(line, { format: 'jsonl', chat: chatContextOf(tok) }).examples;
    expect(ex.addSpecial).toBe(false);
    expect(ex.prompt).toBe('<s>User: Hi there\nAssistant:');
    expect(ex.completion).toBe(' Hello!\n');
  });
});
