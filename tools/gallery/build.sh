#!/usr/bin/env bash
# Builds the studio's built-in adapters: trains every recipe in tools/gallery/recipes.json on the bundled
# model with the CLI (npm run train) into public/gallery/<id>/, then writes public/gallery/index.json.
#   bash tools/gallery/build.sh            all recipes
#   bash tools/gallery/build.sh <id>...    only these (the index is rebuilt from every folder present)
set -euo pipefail
cd "$(dirname "$0")/../.."
MODEL=public/models/weblora-llama-1m
OUT=public/gallery
mkdir -p "$OUT"
ids=("$@")
if [ ${#ids[@]} -eq 0 ]; then
  mapfile -t ids < <(node -e 'for (const r of require("./tools/gallery/recipes.json")) console.log(r.id)')
fi
for id in "${ids[@]}"; do
  # The recipe's CLI flags, NUL-separated (the sample prompt may hold a newline).
  mapfile -d '' args < <(node -e '
    const r = require("./tools/gallery/recipes.json").find((x) => x.id === process.argv[1]);
    if (!r) { console.error(`no recipe "${process.argv[1]}"`); process.exit(1); }
    for (const a of ["--data", r.data, "--name", r.name, "--sample-prompt", r.samplePrompt, ...r.args]) process.stdout.write(a + "\0");
  ' "$id")
  echo "== $id: npm run train -- --model $MODEL --out $OUT/$id ${args[*]}" >&2
  start=$(date +%s)
  base_hash=$(sha256sum "$MODEL/model.safetensors" | cut -d' ' -f1)
  npm run --silent train -- --model "$MODEL" --out "$OUT/$id" "${args[@]}"
  # The base weights it was trained on (the gallery test fails once the bundled model changes).
  echo "$base_hash" > "$OUT/$id/base_model.sha256"
  echo "== $id: $(( $(date +%s) - start )) s" >&2
done
node tools/gallery/index.mjs
