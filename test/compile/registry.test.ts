// The registry against the upstream recipe: every config key of spec §2.1–§2.3 is declared with
// its readers, every shipped YAML resolves for its trainer without a single diagnostic, and the
// declared stage kinds are the ones the issue lists.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { CONFIG_KEYS, kindNames, getKind, TRAINER_NAMES } from '../../runner/registry/index.js';
import { resolveStageConfig } from '../../runner/config/index.js';
import { fromRoot, repoRoot } from '../util/paths.js';

// Upstream key names (spec §2.1 table rows, §2.3 code defaults, train.py runtime keys): input data.
const UPSTREAM_KEYS = `independent_first_frame warp_denoising_step weight_decay same_step_across_blocks
discriminator_lr_multiplier last_step_only i2v num_training_frames gc_interval context_noise causal ckpt_step
prompt_name prompt_path eval_first_n num_samples height width num_frames generator_ckpt
generator_fsdp_wrap_strategy real_score_fsdp_wrap_strategy fake_score_fsdp_wrap_strategy
text_encoder_fsdp_wrap_strategy real_name denoising_step_list denoising_step_list_first_chunk ts_schedule
num_train_timestep timestep_shift model_kwargs guidance_scale denoising_loss_type mixed_precision seed wandb_host
wandb_key wandb_entity wandb_project wandb_name sharding_strategy lr lr_critic beta1 beta2 beta1_critic
beta2_critic batch_size total_batch_size grad_accum ema_weight ema_start_step log_iters negative_prompt
dfake_gen_update_ratio image_or_video_shape distribution_loss trainer gradient_checkpointing num_frame_per_block
load_raw_video data_path teacher_forcing spatial_sf is_causal discrete_cd_N generator_grad generator_task
fake_name real_guidance_scale fake_guidance_scale ts_schedule_max min_score_timestep
noise_augmentation_max_timestep max_grad_norm_generator max_grad_norm_critic text_encoder_cpu_offload max_pair
backward_simulation eval_interval no_save no_visualize tf config_name logdir wandb_save_dir disable_wandb`.split(/\s+/);

test('every upstream config key is declared', () => {
  const missing = UPSTREAM_KEYS.filter((k) => !Object.hasOwn(CONFIG_KEYS, k));
  assert.deepEqual(missing, []);
  for (const k of ['log_iters', 'gc_interval', 'wandb_key', 'data_path', 'generator_ckpt']) assert.equal(CONFIG_KEYS[k]!.semantic, false, k);
  for (const k of ['lr', 'num_frame_per_block', 'denoising_step_list', 'model_kwargs', 'max_steps']) assert.equal(CONFIG_KEYS[k]!.semantic, true, k);
});

test('the stage kinds of the issue are declared, and train knows each trainer', () => {
  const issued = ['eval', 'exec', 'fetch', 'infer', 'lmdb_build', 'merge', 'ode_pairs', 'report', 'synth', 'train'];
  assert.deepEqual(issued.filter((k) => !kindNames().includes(k)), []);
  assert.deepEqual(Object.keys(getKind('train')!.trainerInputs!).sort(), [...TRAINER_NAMES].sort());
});

for (const name of readdirSync(fromRoot('configs')).filter((n) => n.endsWith('.yaml'))) {
  test(`configs/${name} resolves without diagnostics`, () => {
    const isTrainerConfig = name !== 'default_config.yaml';
    const result = resolveStageConfig({
      root: repoRoot,
      path: `configs/${name}`,
      pathRange: { file: 'x.cf', start: { line: 1, column: 1, offset: 0 }, end: { line: 1, column: 1, offset: 0 } },
      use: isTrainerConfig ? { required: true } : { required: false, consumer: 'synth' },
      display: (p) => p,
    });
    assert.deepEqual(result.diagnostics, []);
    if (isTrainerConfig) assert.ok(TRAINER_NAMES.includes(result.consumer!), `trainer ${result.consumer}`);
  });
}
