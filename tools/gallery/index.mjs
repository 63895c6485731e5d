// Writes public/gallery/index.json from the adapter folders tools/gallery/build.sh trained: one entry per
// recipe (GalleryEntry of src/worker/protocol.ts plus `path`, the folder under public/gallery/).
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const GALLERY = 'public/gallery';
const BASE = 'weblora-llama-1m';
const recipes = JSON.parse(readFileSync('tools/gallery/recipes.json', 'utf8'));
// An adapter keeps its createdAt while its weights are unchanged (re-running this must not churn the index).
const previous = existsSync(join(GALLERY, 'index.json'))
  ? JSON.parse(readFileSync(join(GALLERY, 'index.json'), 'utf8'))
  : [];
const entries = [];
for (const r of recipes) {
  const dir = join(GALLERY, r.id);
  if (!existsSync(join(dir, 'training_log.json'))) {
    console.error(`skipping ${r.id}: ${dir}/training_log.json is missing (run tools/gallery/build.sh ${r.id})`);
    continue;
  }
  const log = JSON.parse(readFileSync(join(dir, 'training_log.json'), 'utf8'));
  const weights = readFileSync(join(dir, 'adapter_model.safetensors'));
  const weightsHash = createHash('sha256').update(weights).digest('hex');
  const s = log.settings;
  const size = ['adapter_model.safetensors', 'adapter_config.json', 'README.md'].reduce(
    (n, f) => n + statSync(join(dir, f)).size,
    0,
  );
  entries.push({
    id: `builtin-${r.id}`,
    name: r.name,
    builtin: true,
    baseModel: BASE,
    weightsHash,
    dataset: log.dataset,
    settings: {
      rank: s.rank,
      alpha: s.alpha,
      targets: s.targets,
      useRslora: s.useRslora,
      dropout: s.dropout,
      lr: s.lr,
      warmupSteps: s.warmupSteps,
      decay: s.decay,
      batchSize: s.batchSize,
      gradAccum: s.gradAccum,
      seqLen: s.seqLen,
      steps: log.steps,
      seed: s.seed,
    },
    lossCurve: log.lossCurve,
    valCurve: log.valCurve,
    createdAt: previous.find((p) => p.weightsHash === weightsHash)?.createdAt ?? new Date().toISOString(),
    sizeBytes: size,
    path: r.id,
    // sha256 of the bundled model.safetensors it was trained on (tools/gallery/build.sh records it).
    baseWeightsHash: readFileSync(join(dir, 'base_model.sha256'), 'utf8').trim(),
  });
}
writeFileSync(join(GALLERY, 'index.json'), JSON.stringify(entries, null, 1) + '\n');
console.error(`wrote ${GALLERY}/index.json (${entries.length} adapters)`);
