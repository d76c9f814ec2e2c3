// Read shaping for one connection (limits.bytesPerSecond): a token bucket over received bytes.
// The connection counts every chunk it reads; when the bucket runs dry it pauses the socket for
// as long as the deficit takes to refill. TCP flow control then slows the sender: nothing is
// dropped and the session stays up. One clock read per chunk, no timer unless paused.

export class ReadShaper {
  private tokens: number;
  private stamp: number;

  constructor(private rate: number, private burst: number, now: number) {
    this.tokens = burst;
    this.stamp = now;
  }

  /**
   * Count `bytes` just read at time `now` (ms). Returns 0 to keep reading, else how many ms to
   * pause so that the average stays at the rate. The bucket may go negative: a chunk that
   * arrived is always taken in whole, and the pause repays it.
   */
  take(bytes: number, now: number): number {
    let t = this.tokens + ((now - this.stamp) * this.rate) / 1000;
    if (t > this.burst) t = this.burst;
    this.stamp = now;
    t -= bytes;
    this.tokens = t;
    return t >= 0 ? 0 : Math.ceil((-t * 1000) / this.rate);
  }

  /** New rate and burst (at resource binding), starting with a full bucket. */
  reset(rate: number, burst: number, now: number): void {
    this.rate = rate;
    this.burst = burst;
    this.tokens = burst;
    this.stamp = now;
  }
}
