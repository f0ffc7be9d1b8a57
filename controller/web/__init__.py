"""MissionControl web: run control, logs, metrics and live data of a group in the browser."""
