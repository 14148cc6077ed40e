#!/usr/bin/env bash
# The job script users write today to push into another account's ECR, as found in blog posts
# and answers: assume the role with the External ID, log into ECR with the role's credentials,
# push with skopeo (no Docker daemon). The benchmark times this whole script.
#
# In: ROLE_ARN, EXTERNAL_ID, AWS_REGION, REGISTRY (host[:port] of ECR; here the stand-in),
# REPOSITORY, TAG, SOURCE (oci:DIR:TAG), and the runner's own AWS identity (AWS_* variables).
# SKOPEO_FLAGS: here --dest-tls-verify=false (the stand-in speaks plain HTTP) and
# --preserve-digests (the bench image has uncompressed layers; see bench/scenarios.py).
set -euo pipefail

read -r AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN < <(
  aws sts assume-role \
    --role-arn "$ROLE_ARN" \
    --role-session-name "gitlab-${CI_JOB_ID}" \
    --external-id "$EXTERNAL_ID" \
    --query 'Credentials.[AccessKeyId,SecretAccessKey,SessionToken]' \
    --output text
)
export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN

PASSWORD="$(aws ecr get-login-password --region "$AWS_REGION")"

# shellcheck disable=SC2086 # SKOPEO_FLAGS is a list of flags
skopeo copy ${SKOPEO_FLAGS:-} --dest-creds "AWS:${PASSWORD}" \
  "$SOURCE" "docker://${REGISTRY}/${REPOSITORY}:${TAG}"
