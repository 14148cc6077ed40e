"""gitlab-xacct: push images from a GitLab job into ECR in another AWS account."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("gitlab-xacct")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
