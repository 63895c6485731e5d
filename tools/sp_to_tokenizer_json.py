"""Convert a sentencepiece BPE model (Llama-style: <unk>=0, <s>=1, </s>=2, byte_fallback)
into a Hugging Face `tokenizer.json` + `tokenizer_config.json`, laid out the way
transformers' LlamaConverter (LlamaTokenizerFast) writes them:

  normalizer   Sequence[Prepend("▁"), Replace(" " -> "▁")]     (sentencepiece's add_dummy_prefix + space escaping)
  pre_tokenizer null                                             (BPE runs over the whole string, as sentencepiece does)
  model        BPE, byte_fallback, merges derived from the vocab (ranked by the merged piece's score)
  decoder      Sequence[Replace("▁" -> " "), ByteFallback, Fuse, Strip(" ", 1, 0)]
  post         TemplateProcessing: <s> $A

Usage: /usr/bin/python3 tools/sp_to_tokenizer_json.py tok.model out_dir [model_max_length]
"""
import json
import os
import sys

import sentencepiece as spm


def sentencepiece_merges(vocab, scores):
    # Same rule as transformers' SentencePieceExtractor: every split of a piece into two
    # pieces that are both in the vocab is a merge; merges are ranked by the score of the
    # piece they produce (higher score = earlier merge), ties broken by the ids of the parts.
    merges = []
    for piece, score in scores.items():
        local = []
        for i in range(1, len(piece)):
            left, right = piece[:i], piece[i:]
            if left in vocab and right in vocab:
                local.append((left, right, score))
        local.sort(key=lambda m: (vocab[m[0]], vocab[m[1]]))
        merges.extend(local)
    merges.sort(key=lambda m: m[2], reverse=True)  # stable: keeps the tie order above
    return [f"{l} {r}" for l, r, _ in merges]


def build_tokenizer_json(sp):
    n = sp.get_piece_size()
    vocab = {sp.id_to_piece(i): i for i in range(n)}
    # control and byte pieces never take part in merges
    scores = {}
    for i in range(n):
        if sp.is_control(i) or sp.is_unknown(i) or sp.is_byte(i):
            continue
        scores[sp.id_to_piece(i)] = sp.get_score(i)
    special = [(0, "<unk>"), (1, "<s>"), (2, "</s>")]
    for i, tok in special:
        assert sp.id_to_piece(i) == tok, (i, sp.id_to_piece(i))
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": i, "content": tok, "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": True}
            for i, tok in special
        ],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"},
        ]},
        "pre_tokenizer": None,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}},
        },
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0},
        ]},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": "<unk>",
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": True,
            "byte_fallback": True,
            "ignore_merges": False,
            "vocab": vocab,
            "merges": sentencepiece_merges(vocab, scores),
        },
    }


def build_tokenizer_config(model_max_length):
    return {
        "add_bos_token": True,
        "add_eos_token": False,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "pad_token": None,
        "clean_up_tokenization_spaces": False,
        "legacy": False,
        "model_max_length": model_max_length,
        "tokenizer_class": "LlamaTokenizerFast",
        # plain-text chat: each turn on its own lines, the model continues after "Assistant:"
        "chat_template": ("{{ bos_token }}{% for message in messages %}"
                          "{{ message['role'] | capitalize }}: {{ message['content'] }}\n"
                          "{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}"),
    }


def write_tokenizer_files(model_path, out_dir, model_max_length=256):
    sp = spm.SentencePieceProcessor(model_file=model_path)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(build_tokenizer_json(sp), f, ensure_ascii=False, indent=1)
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(build_tokenizer_config(model_max_length), f, ensure_ascii=False, indent=2)


if __name__ == "__main__":
    write_tokenizer_files(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 256)
