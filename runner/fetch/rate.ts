// Byte counter with a smoothed rate, for progress lines like "1.2 GiB / 3.0 GiB at 85 MiB/s".

export class RateMeter {
  #done = 0;
  #rate = 0;
  #lastT: number;
  #lastDone = 0;
  readonly #now: () => number;

  constructor(now: () => number = () => performance.now()) {
    this.#now = now;
    this.#lastT = now();
  }

  add(bytes: number): void {
    this.#done += bytes;
  }

  get done(): number {
    return this.#done;
  }

  /** Bytes per second, an exponential moving average over ~2 s windows. */
  rate(): number {
    const t = this.#now();
    const dt = (t - this.#lastT) / 1000;
    if (dt >= 0.25) {
      const instant = (this.#done - this.#lastDone) / dt;
      const alpha = Math.min(1, dt / 2);
      this.#rate = this.#rate === 0 ? instant : this.#rate + alpha * (instant - this.#rate);
      this.#lastT = t;
      this.#lastDone = this.#done;
    }
    return this.#rate;
  }
}
