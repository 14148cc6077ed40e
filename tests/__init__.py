"""Tests of gitlab_xacct, and the local stand-ins they run against."""
