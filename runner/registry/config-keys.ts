// Every config key of the upstream recipe (spec §2.1–§2.3), the runtime keys upstream's train.py
// adds, and cfpipe's own additions (`max_steps`, the model-size block under `model_kwargs`):
// its type, which trainer or tool reads it, and whether it changes results. Keys that only steer
// logging, memory layout or where upstream found its files are `semantic: false`: they still reach
// the trainer but stay out of the cache key (data and init paths are stage inputs here, and the
// inputs' keys already cover them).

import type { ConfigConsumer, ConfigKeySpec, ValueType } from './types.js';

const bool: ValueType = { kind: 'bool' };
const int: ValueType = { kind: 'int' };
const num: ValueType = { kind: 'number' };
const str: ValueType = { kind: 'string' };
const any: ValueType = { kind: 'any' };
const intList: ValueType = { kind: 'list', items: int };
const oneOf = (...values: string[]): ValueType => ({ kind: 'string', oneOf: values });

const TRAINERS = 'all-trainers' as const;
const DIFF: ConfigConsumer = 'diffusion';
const ODE: ConfigConsumer = 'ode';
const DMD: ConfigConsumer = 'score_distillation';
const CD: ConfigConsumer = 'consistency_distillation';
const INFER: ConfigConsumer = 'inference';
const PAIRS: ConfigConsumer = 'ode_pairs';
const SYNTH: ConfigConsumer = 'synth';
const ALL_TRAINERS: readonly ConfigConsumer[] = [DIFF, ODE, DMD, CD];

const key = (
  type: ValueType,
  readBy: ConfigKeySpec['readBy'],
  doc: string,
  semantic = true,
  keys?: ConfigKeySpec['keys'],
): ConfigKeySpec => (keys ? { type, readBy, semantic, doc, keys } : { type, readBy, semantic, doc });

/** Upstream keys nothing reads (spec §2.2 "UNUSED"): accepted, warned about, never in the key. */
const unused = (type: ValueType, doc: string): ConfigKeySpec => key(type, [], `${doc} (upstream reads it nowhere)`, false);

/** The dimensions of our small DiT (spec §4.1 names them; the native engine reads this block). */
const MODEL_KWARGS: { readonly [key: string]: ConfigKeySpec } = {
  timestep_shift: key(num, TRAINERS, 'shift of the generator\'s 1000-step grid (add_noise, x0, loss weights, warping)'),
  dim: key(int, TRAINERS, 'hidden width of the DiT'),
  num_layers: key(int, TRAINERS, 'number of DiT blocks'),
  num_heads: key(int, TRAINERS, 'attention heads (head dim = dim / num_heads)'),
  ffn_dim: key(int, TRAINERS, 'feed-forward width'),
  freq_dim: key(int, TRAINERS, 'sinusoidal time-embedding width'),
  text_dim: key(int, TRAINERS, 'width of the text embeddings (T5 stand-in)'),
  text_len: key(int, TRAINERS, 'text tokens per prompt'),
  patch_size: key({ kind: 'list', items: int, length: 3 }, TRAINERS, 'patch (t, h, w)'),
  frames: key(int, TRAINERS, 'latent frames per clip (F)'),
  height: key(int, TRAINERS, 'latent height (H)'),
  width: key(int, TRAINERS, 'latent width (W)'),
  channels: key(int, TRAINERS, 'latent channels (C)'),
  qk_norm: key(bool, TRAINERS, 'RMS-normalise queries and keys'),
  eps: key(num, TRAINERS, 'epsilon of the norms'),
};

export const CONFIG_KEYS: { readonly [key: string]: ConfigKeySpec } = {
  // -- what runs
  trainer: key(oneOf('diffusion', 'ode', 'score_distillation', 'consistency_distillation'), TRAINERS, 'which trainer train.py dispatches to'),
  max_steps: key(int, TRAINERS, 'cfpipe addition: optimizer steps to run (upstream loops forever); a train stage\'s `steps` sets it'),
  seed: key(int, [...ALL_TRAINERS, INFER], 'random seed (upstream: 0 draws a random one; cfpipe always uses the value)'),
  // -- model and block layout
  model_kwargs: key({ kind: 'map' }, [...ALL_TRAINERS, INFER, PAIRS, SYNTH], 'generator wrapper arguments and the model-size block', true, MODEL_KWARGS),
  num_frame_per_block: key(int, [...ALL_TRAINERS, INFER, PAIRS], 'latent frames per AR block k: 1 frame-wise, 3 chunk-wise'),
  independent_first_frame: key(bool, [...ALL_TRAINERS, INFER, PAIRS], 'block layout [1, k, k, ...]'),
  causal: key(bool, TRAINERS, 'generator is causal (false for the bidirectional base)'),
  is_causal: key(bool, [CD], 'student and EMA are causal'),
  num_training_frames: key(int, [DMD, CD], 'rollout length in latent frames'),
  image_or_video_shape: key({ kind: 'list', items: int, length: 5 }, [DIFF, DMD, CD], 'noise shape [B, F, C, H, W]'),
  // -- schedules
  denoising_step_list: key(intList, [...ALL_TRAINERS, INFER], 'few-step schedule (nominal t); its presence selects few-step inference'),
  denoising_step_list_first_chunk: key(intList, [DMD, CD, INFER], 'schedule of block 0 (CF++ 1- and 2-step)'),
  warp_denoising_step: key(bool, [...ALL_TRAINERS, INFER], 'map nominal t onto the shifted grid'),
  timestep_shift: key(num, [DIFF, DMD, CD, INFER], 'DMD timestep shift; UniPC shift of many-step inference'),
  num_train_timestep: key(int, [DIFF, DMD, CD, INFER], 'training grid size (1000)'),
  ts_schedule: key(bool, [DMD], 'lower-bound the DMD t by the generator exit step'),
  ts_schedule_max: key(bool, [DMD], 'upper-bound variant of ts_schedule'),
  min_score_timestep: key(int, [DMD], 'lowest DMD timestep'),
  same_step_across_blocks: key(bool, [DMD, CD], 'one random exit step for all blocks of a rollout'),
  last_step_only: key(bool, [DMD, CD], 'always exit the rollout at the last step'),
  context_noise: key(num, [DMD, CD, INFER, PAIRS], 'timestep of the cache-write pass of a finished block'),
  noise_augmentation_max_timestep: key(int, [DIFF], 'noise added to the clean context in stage 1 (0: none)'),
  teacher_forcing: key(bool, [DIFF], 'condition on the ground-truth clean clip (teacher forcing)'),
  discrete_cd_N: key(int, [CD], 'consistency-distillation discretisation steps'),
  backward_simulation: key(bool, [DMD], 'roll the generator out during training (must be true)'),
  // -- guidance and losses
  guidance_scale: key(num, [DMD, CD, INFER], 'CFG scale'),
  real_guidance_scale: key(num, [DMD], 'real-score CFG (defaults to guidance_scale)'),
  fake_guidance_scale: key(num, [DMD], 'fake-score CFG (defaults to 0)'),
  negative_prompt: key(str, [DIFF, DMD, CD, INFER, PAIRS], 'unconditional text for CFG'),
  text_dropout: key(num, [DIFF], 'cfpipe: fraction of training rows whose text is the negative prompt (CFG for a base trained from scratch)'),
  denoising_loss_type: key(oneOf('flow', 'x0', 'v', 'noise'), TRAINERS, 'critic / denoising loss form'),
  distribution_loss: key(str, [DMD], 'distribution-matching loss (dmd)'),
  dfake_gen_update_ratio: key(int, [DMD], 'critic updates per generator update'),
  real_name: key(str, [DMD], 'upstream folder of the real score; here the `real_score` input', false),
  fake_name: key(str, [DMD], 'upstream folder of the fake score; here the `fake_score` input', false),
  max_pair: key(num, TRAINERS, 'upstream code default 1e8'),
  i2v: key(bool, [DMD], 'image-to-video training variant'),
  load_raw_video: key(bool, [DIFF], 'encode raw frames instead of reading latents'),
  // -- optimisation
  lr: key(num, TRAINERS, 'generator AdamW learning rate'),
  beta1: key(num, TRAINERS, 'generator AdamW beta1'),
  beta2: key(num, TRAINERS, 'generator AdamW beta2'),
  weight_decay: key(num, TRAINERS, 'AdamW weight decay'),
  lr_critic: key(num, [DMD], 'critic AdamW learning rate'),
  beta1_critic: key(num, [DMD], 'critic AdamW beta1'),
  beta2_critic: key(num, [DMD], 'critic AdamW beta2'),
  max_grad_norm_generator: key(num, TRAINERS, 'generator gradient-norm clip'),
  max_grad_norm_critic: key(num, [DMD], 'critic gradient-norm clip'),
  batch_size: key(int, TRAINERS, 'batch per rank'),
  ema_weight: key(num, [DIFF, DMD, CD], 'EMA decay'),
  ema_start_step: key(int, [DIFF, DMD, CD], 'step from which EMA is kept (and saved alone)'),
  mixed_precision: key(bool, TRAINERS, 'bf16 compute with fp32 reduce'),
  // -- not part of the result: layout, logging, where upstream found files
  data_path: key(str, TRAINERS, 'upstream data location; here the stage\'s `data` input', false),
  generator_ckpt: key(str, TRAINERS, 'upstream init checkpoint; here the stage\'s `init` input', false),
  log_iters: key(int, TRAINERS, 'checkpoint / log interval in steps', false),
  gc_interval: key(int, TRAINERS, 'garbage-collection interval', false),
  eval_interval: key(int, [DIFF], 'in-training evaluation interval (0: off)', false),
  gradient_checkpointing: key(bool, TRAINERS, 'recompute activations in backward', false),
  sharding_strategy: key(oneOf('full', 'hybrid_full', 'hybrid_zero2', 'no_shard'), TRAINERS, 'FSDP sharding', false),
  generator_fsdp_wrap_strategy: key(oneOf('size', 'transformer'), TRAINERS, 'FSDP wrap policy', false),
  real_score_fsdp_wrap_strategy: key(oneOf('size', 'transformer'), TRAINERS, 'FSDP wrap policy', false),
  fake_score_fsdp_wrap_strategy: key(oneOf('size', 'transformer'), TRAINERS, 'FSDP wrap policy', false),
  text_encoder_fsdp_wrap_strategy: key(oneOf('size', 'transformer'), TRAINERS, 'FSDP wrap policy', false),
  text_encoder_cpu_offload: key(bool, TRAINERS, 'keep the text encoder on the CPU', false),
  wandb_host: key(any, TRAINERS, 'W&B host', false),
  wandb_key: key(any, TRAINERS, 'W&B key (upstream placeholder `{your key}` parses as a map)', false),
  wandb_entity: key(any, TRAINERS, 'W&B entity', false),
  wandb_project: key(any, TRAINERS, 'W&B project', false),
  // -- runtime keys upstream's train.py adds from its flags
  no_save: key(bool, TRAINERS, 'runtime flag --no_save', false),
  no_visualize: key(bool, TRAINERS, 'runtime flag --no_visualize', false),
  tf: key(bool, TRAINERS, 'runtime flag --tf (nothing reads it)', false),
  config_name: key(str, TRAINERS, 'stem of the chosen YAML', false),
  logdir: key(str, TRAINERS, 'runtime flag --logdir', false),
  wandb_save_dir: key(str, TRAINERS, 'runtime flag --wandb-save-dir', false),
  disable_wandb: key(bool, TRAINERS, 'runtime flag --disable-wandb', false),
  // -- upstream leftovers
  total_batch_size: unused(int, 'intended global batch'),
  grad_accum: unused(int, 'gradient accumulation'),
  spatial_sf: unused(bool, 'spatial self forcing'),
  generator_grad: unused({ kind: 'map' }, 'per-module grad switches'),
  generator_task: unused(str, 'generator task name'),
  wandb_name: unused(any, 'W&B run name'),
  ckpt_step: unused(int, 'checkpoint step'),
  prompt_name: unused(str, 'evaluation prompt set'),
  prompt_path: unused(str, 'evaluation prompt file'),
  eval_first_n: unused(int, 'evaluation prompt count'),
  num_samples: unused(int, 'samples per prompt'),
  height: unused(int, 'RGB height'),
  width: unused(int, 'RGB width'),
  num_frames: unused(int, 'RGB frames'),
  discriminator_lr_multiplier: unused(num, 'GAN discriminator lr factor'),
};

/** Whether `consumer` reads `spec` (trainers read the `all-trainers` keys). */
export const isReadBy = (spec: ConfigKeySpec, consumer: ConfigConsumer): boolean =>
  spec.readBy === 'all-trainers'
    ? (ALL_TRAINERS as readonly string[]).includes(consumer)
    : spec.readBy.includes(consumer);

/** The consumers that read a key, for messages ("read by ode, score_distillation"). */
export const readersOf = (spec: ConfigKeySpec): readonly ConfigConsumer[] =>
  spec.readBy === 'all-trainers' ? ALL_TRAINERS : spec.readBy;

export const TRAINER_NAMES: readonly ConfigConsumer[] = ALL_TRAINERS;
