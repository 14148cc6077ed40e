# The image a GitLab job runs `gitlab-xacct push` in: no Docker client or daemon needed.
# BASE_IMAGE is any Debian-like image with python3 (>= 3.11), its venv module and /bin/sh:
# the official python:3.11-slim, or the debootstrap base that `make image-test` builds offline.
# Both stages install into a venv at /opt/xacct, so Debian's python3 works as well as python's.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
WORKDIR /src
RUN python3 -m venv /opt/build \
    && /opt/build/bin/python -m pip install --no-cache-dir --quiet "setuptools>=77" "wheel"
COPY pyproject.toml README.md ./
COPY gitlab_xacct ./gitlab_xacct
COPY ci-templates ./ci-templates
COPY templates ./templates
RUN /opt/build/bin/python -m pip wheel --no-cache-dir --no-deps --no-build-isolation \
        --wheel-dir /wheels .

FROM ${BASE_IMAGE}
ARG VERSION=dev
ARG REVISION=unknown
ARG SOURCE=""
LABEL org.opencontainers.image.title="gitlab-xacct" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build /wheels /wheels
# Only the wheel and its runtime dependencies (boto3, requests); pip itself leaves the venv.
RUN python3 -m venv /opt/xacct \
    && /opt/xacct/bin/python -m pip install --no-cache-dir --quiet /wheels/*.whl \
    && /opt/xacct/bin/python -m pip uninstall --yes --quiet pip \
    && rm -rf /wheels \
    && useradd --uid 10001 --user-group --create-home --shell /bin/sh xacct
ENV PATH="/opt/xacct/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001
WORKDIR /home/xacct
# GitLab runs the job script with /bin/sh in this image; the default command just says what it is.
CMD ["gitlab-xacct", "--version"]
