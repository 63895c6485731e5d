// Hostile chat templates end quickly with an error that names the template's file: a range() loop that
// would never finish (the library builds the whole list), nested loops, raise_exception, parse errors.

import { describe, expect, it } from 'vitest';
import { MAX_TEMPLATE_RANGE, renderChat } from '../../src/data/chat';
import { parseExamples } from '../../src/data/formats';

const convo = [
  { role: 'user', content: 'hi' },
  { role: 'assistant', content: 'hello' },
];
const ctx = (template: string) => ({ template, specialTokens: {}, templateFile: 'tokenizer_config.json' });

describe('chat templates that would hang or throw', () => {
  it('refuses range(10**9) and nested range loops within the budget, naming the file', () => {
    for (const template of [
      '{% for i in range(1000000000) %}x{% endfor %}',
      '{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}',
    ]) {
      const t0 = performance.now();
      expect(() => renderChat(convo, ctx(template))).toThrow(
        new RegExp(
          `the chat template in tokenizer_config\\.json .*range\\(\\) for more than ${MAX_TEMPLATE_RANGE} numbers`,
        ),
      );
      expect(performance.now() - t0).toBeLessThan(1000);
    }
  });

  it('a template that loops over range() within the budget still renders (as the library would)', () => {
    const segs = renderChat(
      convo,
      ctx("{% for m in messages %}{% for i in range(2) %}{% endfor %}{{ m['content'] }}|{% endfor %}"),
    );
    expect(segs.map((s) => s.text).join('')).toBe('hi|hello|');
    expect(
      renderChat(convo, ctx('{{ range(2, 10, 3) | join(",") }}{{ messages[1].content }}'))
        .map((s) => s.text)
        .join(''),
    ).toBe('2,5,8hello');
  });

  it('raise_exception and parse errors name the template file and the dataset line', () => {
    const line = JSON.stringify({ messages: convo });
    const chat = ctx("{{ raise_exception('no system role') }}");
    expect(() => parseExamples(line, { format: 'jsonl', fileName: 'c.jsonl', chat })).toThrow(
      /^"c\.jsonl", line 1: the chat template in tokenizer_config\.json failed on a conversation: no system role$/,
    );
    expect(() => renderChat(convo, ctx('{% for m in messages %}'))).toThrow(
      /the chat template in tokenizer_config\.json could not be parsed/,
    );
  });
});
