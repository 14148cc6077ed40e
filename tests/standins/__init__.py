"""Local stand-ins for AWS (patched moto) and ECR's registry (docker-registry)."""
