"""Time as schedules see it: cron expressions in a time zone (DST included), fixed
intervals, and which ticks are due after a pause. Pure logic, no I/O."""
