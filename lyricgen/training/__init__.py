"""Training: set-up (setup.py), the loop (loop.py) and the small parts it calls (step.py,
schedule.py, reporting.py), and where a run stands (progress.py)."""
