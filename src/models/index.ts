// Model construction: a loaded model folder + a GPU context -> a CausalLM with its weights on the GPU.

import type { GpuContext } from '../gpu/context';
import type { ModelConfig } from './config';
import { familySpec } from './families';
import type { CausalLM } from './model';
import { GpuWeights, type TensorReader, type WeightOptions } from './weights';

export function modelFor(cfg: ModelConfig, weights: GpuWeights): CausalLM {
  return familySpec(cfg).model(cfg, weights);
}

/** Uploads the weights and builds the model. Nothing stays on the GPU if it fails. */
export async function loadModel(
  ctx: GpuContext,
  cfg: ModelConfig,
  weights: Map<string, TensorReader>,
  opts: WeightOptions,
): Promise<CausalLM> {
  return modelFor(cfg, await GpuWeights.load(ctx, cfg, weights, opts));
}
