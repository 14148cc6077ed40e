"""`gitlab-xacct bootstrap`: the administrators' commands that set up both accounts."""
