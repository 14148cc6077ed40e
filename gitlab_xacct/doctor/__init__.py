"""`gitlab-xacct doctor`: check every link from the job's variables to a registry upload.

Each check returns a `report.Check`; `run.diagnose` runs them in order and skips the rest once
one fails. The checks reuse the code paths `push` takes (settings, aws/, registry/), so what
the doctor calls ok is what a push will find.
"""
