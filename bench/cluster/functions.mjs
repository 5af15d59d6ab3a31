// The steps of the scaling benchmark: no-op async functions, so the figures are orchestration
// and persistence cost, as in the engine workloads.
export async function noop(input) {
  return input;
}
