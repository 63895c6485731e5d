// Chat conversations -> text segments, with the loss on the assistant turns only.
//
// With a tokenizer chat_template (Jinja) the conversation is rendered once, whole, the way Hugging Face's
// apply_chat_template(messages) does: those are the tokens trained on, whatever the template does to
// earlier turns (Qwen3 drops their <think> blocks). The loss covers each assistant turn from where the
// model starts writing it to the token at which it stops, its end-of-turn token:
//   start  len(render(messages[:i], add_generation_prompt=true)) when the template writes a generation
//          prompt and the renderings up to and through the turn are prefixes of the whole (the prompt
//          ends where the reply begins: Qwen3's empty <think> block of the last reply is trained);
//          otherwise where the reply's content is found, searching in order
//   end    just after the first control token (tokenizer.json's special added tokens) after the reply:
//          <|im_end|> (Qwen, ChatML), <|eot_id|> (Llama 3), <end_of_turn> (Gemma 3). What the template
//          writes after it (a newline, the next header) is never generated, so it is not trained.
//          Without control tokens: the end of render(messages[:i+1]) when that is a prefix of the whole
//          rendering (the template's own closing text), else the end of the content.
// A chat rendered by its template closes its turns itself, so packing adds no EOS after it (as TRL's
// SFT trainer leaves conversational examples; see pack.ts).
//
// Without a template the default layout is, per message:
//   <|role|>\n{content}\n
// and the loss is on "{content}\n" of assistant messages (packing ends the example with EOS).

import { Environment, Interpreter, Template } from '@huggingface/jinja';
import { DatasetError, type Segment, type TextTokenizer } from './types';

export interface ChatMessage {
  role: string;
  content: string;
}

/** What a chat template needs: the template (null = default layout) and the special-token strings. */
export interface ChatContext {
  template: string | null;
  specialTokens: Record<string, string>;
  /** The file the template came from (tokenizer_config.json or chat_template.jinja), for error messages. */
  templateFile?: string | null;
  /** The tokenizer's control tokens (special added tokens); the first after a reply ends its turn. */
  controlTokens?: readonly string[];
}

/**
 * The most numbers a template's range() calls may produce in one rendering, all calls together. A
 * template like {% for i in range(10**9) %} (or two nested range(1000) loops) would otherwise hang the
 * page; real templates loop over the messages, not over range().
 */
export const MAX_TEMPLATE_RANGE = 10_000;

/** The tokenizer's chat template and its special-token strings (decoded from the ids when not given). */
export function chatContextOf(tok: TextTokenizer): ChatContext {
  const specialTokens: Record<string, string> = { ...(tok.specialTokens ?? {}) };
  if (specialTokens.bos_token === undefined && tok.bosId !== null) specialTokens.bos_token = tok.decode([tok.bosId]);
  if (specialTokens.eos_token === undefined && tok.eosId !== null) specialTokens.eos_token = tok.decode([tok.eosId]);
  return {
    template: tok.chatTemplate,
    specialTokens,
    templateFile: tok.chatTemplateFile ?? null,
    controlTokens: tok.controlTokens ?? [],
  };
}

/** "the chat template in tokenizer_config.json" (or without the file when it is not known). */
function templateName(ctx: ChatContext): string {
  return ctx.templateFile ? `the chat template in ${ctx.templateFile}` : "the tokenizer's chat template";
}

/**
 * Template.render with the library's globals, except that range() is boundedRange (Template.render
 * declares its own range, which a context value cannot replace).
 */
function renderBounded(t: Template, ctx: ChatContext, items: Record<string, unknown>): unknown {
  const env = new Environment();
  const globals: Record<string, unknown> = {
    false: false,
    true: true,
    none: null,
    False: false,
    True: true,
    None: null,
    raise_exception: (msg: unknown) => {
      throw new Error(String(msg));
    },
    range: boundedRange(ctx),
    strftime_now: strftimeNow,
  };
  for (const [k, v] of Object.entries({ ...globals, ...items })) env.set(k, v);
  return new Interpreter(env).run(t.parsed).value;
}

/** strftime_now(format) as the library has it: %Y %m %d %b %B %H %M %% of the current local time. */
function strftimeNow(format: unknown): string {
  const d = new Date();
  const pad2 = (n: number) => String(n).padStart(2, '0');
  const month = (style: 'long' | 'short') => new Intl.DateTimeFormat(undefined, { month: style }).format(d);
  return String(format).replace(/%[YmdbBHM%]/g, (tok) =>
    tok === '%Y'
      ? String(d.getFullYear())
      : tok === '%m'
        ? pad2(d.getMonth() + 1)
        : tok === '%d'
          ? pad2(d.getDate())
          : tok === '%b'
            ? month('short')
            : tok === '%B'
              ? month('long')
              : tok === '%H'
                ? pad2(d.getHours())
                : tok === '%M'
                  ? pad2(d.getMinutes())
                  : '%',
  );
}

/** Jinja's range(), with a budget of MAX_TEMPLATE_RANGE numbers for one rendering. */
function boundedRange(ctx: ChatContext) {
  let budget = MAX_TEMPLATE_RANGE;
  return (start: number, stop?: number, step = 1): number[] => {
    if (stop === undefined) [start, stop] = [0, start];
    for (const v of [start, stop, step])
      if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`range() needs numbers, got ${String(v)}`);
    if (step === 0) throw new Error('range() step must not be zero');
    const n = Math.max(0, Math.ceil((stop - start) / step));
    budget -= n;
    if (budget < 0)
      throw new Error(
        `${templateName(ctx)} asks range() for more than ${MAX_TEMPLATE_RANGE} numbers in one conversation (${n} in one call); it would not finish`,
      );
    return Array.from({ length: n }, (_, i) => start + i * step);
  };
}

/** Checks a `messages` value from a data file; `where` names it in errors (e.g. "line 3"). */
export function parseMessages(value: unknown, where: string): ChatMessage[] {
  if (!Array.isArray(value) || value.length === 0) {
    throw new DatasetError(`${where}: "messages" must be a non-empty list of {"role": ..., "content": ...}`);
  }
  const out: ChatMessage[] = [];
  value.forEach((m, i) => {
    const r = m as Record<string, unknown>;
    if (!r || typeof r !== 'object' || typeof r.role !== 'string' || typeof r.content !== 'string') {
      throw new DatasetError(`${where}: message ${i + 1} must be an object with string "role" and "content"`);
    }
    out.push({ role: r.role, content: r.content });
  });
  if (!out.some((m) => m.role === 'assistant')) {
    throw new DatasetError(
      `${where}: the conversation has no "assistant" message, so there is nothing to train on; add the reply the model should learn`,
    );
  }
  return out;
}

const compiled = new Map<string, Template>();

function templateOf(source: string, ctx: ChatContext): Template {
  let t = compiled.get(source);
  if (!t) {
    try {
      t = new Template(source);
    } catch (e) {
      throw new DatasetError(
        `${templateName(ctx)} could not be parsed (${(e as Error).message}); pick another format or fix the template`,
      );
    }
    compiled.set(source, t);
  }
  return t;
}

function render(t: Template, ctx: ChatContext, messages: ChatMessage[], addGenerationPrompt: boolean): string {
  try {
    const out: unknown = renderBounded(t, ctx, {
      ...ctx.specialTokens,
      messages,
      add_generation_prompt: addGenerationPrompt,
    });
    if (typeof out !== 'string') throw new Error(`it rendered ${typeof out}, not text`);
    return out;
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    throw new DatasetError(`${templateName(ctx)} failed on a conversation: ${msg}`);
  }
}

/** Default layout (no template): "<|role|>\n{content}\n" per message; assistant "{content}\n" trained. */
function defaultSegments(messages: ChatMessage[]): Segment[] {
  const segs: Segment[] = [];
  for (const m of messages) {
    segs.push({ text: `<|${m.role}|>\n`, train: false });
    segs.push({ text: `${m.content}\n`, train: m.role === 'assistant' });
  }
  return mergeSegments(segs);
}

/** Joins neighbours with the same flag and drops empty pieces. */
export function mergeSegments(segs: Segment[]): Segment[] {
  const out: Segment[] = [];
  for (const s of segs) {
    if (!s.text) continue;
    const last = out.at(-1);
    if (last && last.train === s.train) last.text += s.text;
    else out.push({ ...s });
  }
  return out;
}

/** Splits `text` into segments given trained [start, end) character spans (sorted, disjoint). */
function segmentsFromSpans(text: string, spans: [number, number][]): Segment[] {
  const segs: Segment[] = [];
  let at = 0;
  for (const [s, e] of spans) {
    segs.push({ text: text.slice(at, s), train: false });
    segs.push({ text: text.slice(s, e), train: true });
    at = e;
  }
  segs.push({ text: text.slice(at), train: false });
  return mergeSegments(segs);
}

/** The first of `tokens` in `text` at or after `from`: [start, end) of it, or null. */
function firstOf(text: string, tokens: readonly string[], from: number): [number, number] | null {
  let best: [number, number] | null = null;
  for (const tok of tokens) {
    if (!tok) continue;
    const s = text.indexOf(tok, from);
    if (s >= 0 && (best === null || s < best[0] || (s === best[0] && s + tok.length > best[1])))
      best = [s, s + tok.length];
  }
  return best;
}

/** Where `content` (or, as Llama 3's template writes it, trimmed) is in `text` from `from`: [start, end) or null. */
function findContent(text: string, content: string, from: number): [number, number] | null {
  for (const c of [content, content.trim()]) {
    if (!c) continue;
    const s = text.indexOf(c, from);
    if (s >= 0) return [s, s + c.length];
  }
  return null;
}

/**
 * A conversation as segments whose concatenation is the rendered text; each assistant turn, through its
 * end-of-turn token, has train = true (see the file comment for where a turn starts and ends).
 */
export function renderChat(messages: ChatMessage[], ctx: ChatContext): Segment[] {
  if (ctx.template === null) return defaultSegments(messages);
  const t = templateOf(ctx.template, ctx);
  const full = render(t, ctx, messages, false);
  const controls = ctx.controlTokens ?? [];
  const spans: [number, number][] = [];
  let at = 0; // the end of the previous span
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i];
    if (m.role !== 'assistant') continue;
    const upTo = render(t, ctx, messages.slice(0, i), false);
    const before = render(t, ctx, messages.slice(0, i), true);
    const through = render(t, ctx, messages.slice(0, i + 1), false);
    // The turn starts after the generation prompt when the template writes one (it extends the rendering
    // up to the turn) and the renderings up to and through the turn are both prefixes of the whole;
    // otherwise (no generation prompt, a template that rewrites earlier turns or closes the chat with a
    // footer) at its content.
    const fromPrompt =
      before.length > upTo.length &&
      before.startsWith(upTo) &&
      full.startsWith(before) &&
      full.startsWith(through) &&
      at <= before.length &&
      before.length <= through.length;
    const content = findContent(full, m.content, fromPrompt ? before.length : at);
    if (!fromPrompt && content === null) {
      if (!m.content.trim()) continue; // an empty reply the template leaves out: nothing to train
      throw new DatasetError(
        'the chat template does not reproduce the assistant messages verbatim, so their loss cannot be located; pick the "jsonl" prompt/completion layout instead',
      );
    }
    const start = fromPrompt ? before.length : content![0];
    const replyEnd = content && (!fromPrompt || content[1] <= through.length) ? content[1] : start;
    // It ends after its end-of-turn token: the first control token after the reply, within the turn's
    // text (from the prompt) or right after the reply (from the content).
    const stop = firstOf(full, controls, replyEnd);
    let end: number;
    if (stop && (fromPrompt ? stop[1] <= through.length : stop[0] === replyEnd)) end = stop[1];
    else end = fromPrompt ? through.length : replyEnd;
    if (end > start) spans.push([start, end]);
    at = Math.max(at, end);
  }
  return segmentsFromSpans(full, spans);
}
