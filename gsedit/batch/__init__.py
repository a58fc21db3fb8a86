"""`gsedit batch`: many edit sessions from one JOBS.yaml, one Ray task each (jobs.py: the plan;
run.py: running it)."""
