"""gitlab-xacct: push images from a GitLab job into ECR in another AWS account."""

# pyproject.toml's version, written out: importlib.metadata costs ~50 ms of every start-up
# (tests/unit/test_version.py keeps the two equal).
__version__ = "0.1.0.dev0"
