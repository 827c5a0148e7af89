"""Event sources that invoke functions on their own: SQS pollers and schedules.

Layering: ``triggers`` sits beside ``control``: it calls the ``model.Invoker`` and reads the
store; the API layer only tells it that a mapping changed.  Protocol modules (``filters``,
``sqs_events``) do no I/O.
"""
