"""Deleting expired rows on a timetable: a Temporal Schedule starts one sweep an hour."""
