// Functions the chaos workflows call, loaded by every worker process through baton.config.yaml.
// They are deterministic in their outputs (so the test can check every result) but take random
// time, and `flaky` fails its first attempt, so kills land mid-work and retries happen.

const pause = (ms) => new Promise((r) => setTimeout(r, ms));

export async function inc(input) {
  await pause(Math.random() * 20);
  return { n: (input?.n ?? 0) + 1 };
}

export async function square(input) {
  await pause(Math.random() * 30);
  return input * input;
}

export async function flaky(input, ctx) {
  await pause(Math.random() * 10);
  if (ctx.attempt === 1) throw Object.assign(new Error('first attempt always fails'), { retryable: true });
  return { ok: input.n, attempt: ctx.attempt };
}
