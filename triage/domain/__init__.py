"""Pure-Python domain of triage: policy, streams, assessment rules, queue order, slots.

Nothing in this package imports Flask or opens a database session.
"""
