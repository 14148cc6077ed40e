"""`make bench`: gitlab-xacct against skopeo and the shell recipe, on local stand-ins.

Not a test: it measures whole processes and writes docs/benchmarks.md and
bench/results/latest.json. See docs/benchmarks.md for the method.
"""
