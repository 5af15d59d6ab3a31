import { describe, expect, it } from 'vitest';
import { fireRunId, latestFires, scheduleId } from '../../../src/engine/scheduler.js';

const iso = (ms: number[]) => ms.map((m) => new Date(m).toISOString());

describe('scheduler fire times', () => {
  it('lists the latest missed fires in the declared time zone, across a DST change', () => {
    // 09:00 in Paris is 08:00 UTC before 29 March 2026 and 07:00 UTC after.
    const fires = latestFires('0 9 * * *', 'Europe/Paris', Date.parse('2026-03-27T00:00:00Z'), Date.parse('2026-03-31T12:00:00Z'), 10);
    expect(iso(fires)).toEqual(['2026-03-27T08:00:00.000Z', '2026-03-28T08:00:00.000Z', '2026-03-29T07:00:00.000Z', '2026-03-30T07:00:00.000Z', '2026-03-31T07:00:00.000Z']);
    expect(iso(latestFires('0 9 * * *', 'Europe/Paris', Date.parse('2026-03-27T00:00:00Z'), Date.parse('2026-03-31T12:00:00Z'), 2))).toEqual(['2026-03-30T07:00:00.000Z', '2026-03-31T07:00:00.000Z']);
  });

  it('includes a fire at the window\'s start and end, and finds the latest of a frequent cron after a long downtime', () => {
    const t = Date.parse('2026-01-01T00:00:00Z');
    expect(iso(latestFires('* * * * * *', 'UTC', t, t + 2000, 100))).toEqual(['2026-01-01T00:00:00.000Z', '2026-01-01T00:00:01.000Z', '2026-01-01T00:00:02.000Z']);
    // A year of every-second fires: only the latest 3 are enumerated in full.
    expect(iso(latestFires('* * * * * *', 'UTC', t, t + 365 * 86_400_000 + 500, 3))).toEqual(['2026-12-31T23:59:58.000Z', '2026-12-31T23:59:59.000Z', '2027-01-01T00:00:00.000Z']);
    expect(latestFires('0 0 1 1 *', 'UTC', t + 1, t + 1000, 5)).toEqual([]);
  });

  it('names schedules and fire runs stably', () => {
    expect(scheduleId('nightly', 'schedule:0')).toBe('nightly~schedule:0');
    expect(scheduleId('team-a/nightly', 'schedule:2')).toBe('team-a~nightly~schedule:2');
    const id = fireRunId('nightly~schedule:0', Date.parse('2026-01-01T09:00:00Z'));
    expect(id).toMatch(/^sched_[0-9a-f]{12}_20260101T090000000Z$/);
    expect(fireRunId('nightly~schedule:0', Date.parse('2026-01-01T09:00:00Z'))).toBe(id);
    expect(fireRunId('nightly~schedule:1', Date.parse('2026-01-01T09:00:00Z'))).not.toBe(id);
  });
});
