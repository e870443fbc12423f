/**
 * An error that says what the loop should do about it (Flux's Stalled / Retryable):
 * stalled — retrying the same input fails the same way (a missing image, a Node-RED
 * version the runtime lacks, a smoke check); retryable — the world may fix it (a port in
 * use, an engine down). `reason` is PascalCase, reused in status and metrics.
 */
export class TowerError extends Error {
  constructor(
    message: string,
    readonly reason: string,
    readonly kind: 'stalled' | 'retryable' = 'retryable',
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'TowerError';
  }
}
