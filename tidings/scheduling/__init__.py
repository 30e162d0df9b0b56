"""Events in time: delayed and scheduled publishing, recurring schedules.

``publisher.publish(event, delay=timedelta(hours=24))`` sends the event to the
topology's scheduling topic; ``tidings run scheduler`` delivers it to its real topic
when it is due, with its own ``event-id``. ``schedules:`` in topology.yaml declares
recurring events (cron or a fixed interval) the scheduler emits. See
docs/scheduling.md.
"""
