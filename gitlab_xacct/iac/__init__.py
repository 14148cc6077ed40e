"""Setup as code: what `bootstrap` and `gitlab configure` would make, as a CloudFormation
template or a Terraform configuration (`--format`), written from the same documents."""
