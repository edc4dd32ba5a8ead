// How long and how hard the benchmark runs, and the thresholds its verdicts use.

/** Durations and sizes of a full run and of a quick one (`--quick`). */
export function preset (quick) {
  return quick
    ? {
        rampSizes: [100, 1000],
        rampStart: 200_000,
        rampFactor: 4,
        rampMax: 3_200_000,
        refine: 0,
        stepMs: 1000,
        drainMs: 1000,
        cpuMs: 1500,
        chattyMs: 1500,
        chattyWarmupMs: 500,
        rounds: 1,
        idle: 2000,
        fillSizes: [500, 1000],
        storm: { clients: 500, rate: 10, beforeMs: 1000, afterMs: 2000, spreadMs: 0 },
        bigRoom: 2000,
        closeRoom: 1000,
        overloadMs: 2000,
        overloadMaxMs: 12_000,
        retries: 0,
        calmBudgetMs: 5000,
        storeTimeoutMs: 90_000,
        hardLimitMs: 10 * 60_000
      }
    : {
        rampSizes: [100, 1000, 5000],
        rampStart: 50_000,
        rampFactor: 2,
        rampMax: 12_800_000,
        refine: 2,
        stepMs: 3000,
        drainMs: 2000,
        cpuMs: 10_000,
        chattyMs: 10_000,
        chattyWarmupMs: 3000,
        rounds: 3,
        idle: 10_000,
        fillSizes: [5000, 10_000],
        // 10 msg/s into 5,000 clients is 50,000 deliveries a second, half of what one core writes (bench/README.md, cpu); at 200 the storm would measure a server that cannot keep up, not its rejoins.
        storm: { clients: 5000, rate: 10, beforeMs: 3000, afterMs: 5000, spreadMs: 0 },
        bigRoom: 10_000,
        closeRoom: 4000,
        overloadMs: 10_000,
        overloadMaxMs: 30_000,
        retries: 2,
        calmBudgetMs: 10 * 60_000,
        storeTimeoutMs: 15 * 60_000,
        hardLimitMs: 60 * 60_000
      }
}

export const P99_LIMIT_MS = 100
export const SAMPLED = 20 // subscribers per run that decode payloads for latency
export const LOADGEN_BUSY = 90 // % of a core past which the generator may be the bottleneck
export const DISTURBED = 30 // % of a core used by other processes past which a failed or measured run is repeated
export const CALM = 10 // % of a core used by other processes under which the machine counts as calm
