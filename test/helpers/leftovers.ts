/**
 * What a suite started through the helpers (hosts, apps) and has not stopped yet. After the
 * suite, test/helpers/suite-teardown.ts stops the rest and no helper starts anything new: a test
 * that failed or timed out before its cleanup may still be running, and whatever it leaves
 * behind would keep plugin servers running and the Jest worker from exiting.
 */
const running = new Set<() => Promise<void>>();
let over = false;

/** True once the suite's teardown has begun. */
export function suiteHasEnded(): boolean {
  return over;
}

/** Registers `stop` to be run if the suite ends first; call the returned function once stopped. */
export function track(stop: () => Promise<void>): () => void {
  running.add(stop);
  return () => running.delete(stop);
}

/** Runs every registered `stop`, once; from then on `suiteHasEnded()` is true. */
export async function stopLeftovers(): Promise<void> {
  over = true;
  const stops = [...running];
  running.clear();
  await Promise.all(stops.map((stop) => stop()));
}
