"""`python -m gitlab_xacct`."""

from gitlab_xacct.cli import entry

if __name__ == "__main__":
    entry()
