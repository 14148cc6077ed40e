# The image a GitLab job runs `gitlab-xacct push` in: no Docker client or daemon needed.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gitlab_xacct ./gitlab_xacct
RUN python3 -m pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM ${BASE_IMAGE}
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="gitlab-xacct" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build /wheels /wheels
RUN python3 -m pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
    && useradd --uid 10001 --create-home xacct
USER 10001
WORKDIR /home/xacct
# GitLab runs the job script with /bin/sh in this image; the default command just says what it is.
CMD ["gitlab-xacct", "--version"]
