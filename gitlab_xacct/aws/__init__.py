"""The AWS side: base identity, assume role, ECR."""
