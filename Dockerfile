# The image a GitLab job runs `gitlab-xacct push` in (the templates' default): no Docker client or
# daemon, nothing installed at job time. BASE_IMAGE is any Debian-like image with python3 (>= 3.11),
# its venv module and /bin/sh: the debootstrap base that `make image` builds offline, or the
# official python:3.11-slim. Both stages install into a venv at /opt/xacct, so Debian's python3
# works as well as python's. The last stage copies one trimmed filesystem into a single layer:
# what is deleted in a layer above still costs its bytes in the layer below.
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

FROM ${BASE_IMAGE} AS rootfs
COPY --from=build /wheels /wheels
# The wheel and its runtime dependencies; then pip leaves the venv, and what a job never reads
# leaves the image:
# - botocore's models of every AWS service but the three gitlab-xacct calls (sts, ecr, iam:
#   tests/unit/test_image_contents.py holds this list to the code; `make image-test` runs push,
#   login, credentials, doctor and bootstrap inside the image), about 16 MB compressed;
# - documentation, manual pages, translations (the copyright files stay), apt's caches and lists,
#   the wheels python3 -m venv bootstraps pip from, and glibc's iconv modules (Python has codecs
#   of its own).
RUN python3 -m venv /opt/xacct \
    && /opt/xacct/bin/python -m pip install --no-cache-dir --quiet /wheels/*.whl \
    && /opt/xacct/bin/python -m pip uninstall --yes --quiet pip \
    && rm -rf /wheels \
    && find /opt/xacct/lib/python3*/site-packages/botocore/data -mindepth 1 -maxdepth 1 -type d \
        ! -name sts ! -name ecr ! -name iam -exec rm -rf {} + \
    && find /usr/share/doc -mindepth 1 ! -name copyright ! -type d -delete \
    && rm -rf /usr/share/man /usr/share/info /usr/share/locale /usr/share/python-wheels \
        /usr/lib/x86_64-linux-gnu/gconv /usr/lib/aarch64-linux-gnu/gconv \
        /var/cache/apt/* /var/lib/apt/lists/* /var/log/* \
    && useradd --uid 10001 --user-group --create-home --shell /bin/sh xacct

FROM scratch
ARG VERSION=dev
ARG REVISION=unknown
ARG SOURCE=""
LABEL org.opencontainers.image.title="gitlab-xacct" \
      org.opencontainers.image.description="Push images from a GitLab job into ECR in another AWS account" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
# The whole trimmed filesystem, on purpose: one layer without the bytes the trim deleted.
# hadolint ignore=DL3067
COPY --from=rootfs / /
ENV PATH="/opt/xacct/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001
WORKDIR /home/xacct
# GitLab runs the job script with /bin/sh in this image; the default command just says what it is.
CMD ["gitlab-xacct", "--version"]
