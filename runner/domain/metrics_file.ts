// metrics.json, the `metrics` artifact an eval stage writes and a report stage reads.
import type { EvalMetrics, SetScores } from './eval.js';

export const METRICS_FORMAT = 'cfpipe-metrics/1';

export interface ScoresJson {
  readonly videos: number;
  readonly adherence: { readonly color: number; readonly shape: number; readonly direction: number; readonly all: number };
  readonly temporal_consistency: { readonly identity: number; readonly smooth: number; readonly motion_rmse_px: number; readonly presence: number };
  readonly mean_speed_px_per_frame: number;
}

export interface MetricsJson extends ScoresJson {
  readonly format: typeof METRICS_FORMAT;
  readonly label: string;
  readonly stage: string;
  readonly reference_videos: number;
  readonly dynamic_degree: { readonly generated: number; readonly reference: number; readonly ratio: number };
  readonly frechet_distance: number;
  /** The held-out real clips scored the same way: the ceiling for adherence and consistency. */
  readonly reference: ScoresJson;
  /** What the video set says about how it was sampled (steps, network calls per video...). */
  readonly sampling: Readonly<Record<string, string>>;
}

const scoresJson = (s: SetScores): ScoresJson => ({
  videos: s.videos,
  adherence: s.adherence,
  temporal_consistency: { identity: s.temporal.identity, smooth: s.temporal.smooth, motion_rmse_px: s.temporal.motionRmse, presence: s.temporal.presence },
  mean_speed_px_per_frame: s.speed,
});

export function metricsJson(m: EvalMetrics, label: string, stage: string, sampling: Readonly<Record<string, string>>): MetricsJson {
  return {
    format: METRICS_FORMAT,
    label,
    stage,
    ...scoresJson(m.generated),
    reference_videos: m.reference.videos,
    dynamic_degree: m.dynamicDegree,
    frechet_distance: m.frechetDistance,
    reference: scoresJson(m.reference),
    sampling,
  };
}

/** Parses a metrics file; undefined fields make it an error naming the file. */
export function parseMetrics(text: string, path: string): MetricsJson {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Error(`${path} is not JSON`);
  }
  const m = value as Partial<MetricsJson>;
  if (m.format !== METRICS_FORMAT || m.adherence === undefined || m.temporal_consistency === undefined || typeof m.frechet_distance !== 'number') {
    throw new Error(`${path} is not a cfpipe metrics file (${METRICS_FORMAT})`);
  }
  return m as MetricsJson;
}
