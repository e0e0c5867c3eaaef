# gate as a GitHub container action: the entry point reads the INPUT_* and GITHUB_* variables.
# Pinned by digest (the multi-platform index of the tag, so amd64 and arm64 runners both resolve
# it): the image is rebuilt on every workflow run that uses the action, and a tag, even a patch
# one, is re-pushed with Debian updates, which would change what runs under the gate without a
# commit saying so. Dependabot (.github/dependabot.yml) proposes the next digest.
FROM python:3.11.13-slim-bookworm@sha256:86adf8dbadc3d6e82ee5dd2c74bec2e1c2467cdad47886280501df722372d2e1

# Unbuffered: log lines reach the job log as they happen, in order with the annotations.
# No .pyc files: nothing is written next to the code at run time.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/gate

# git: on pull requests the gate reads the thresholds and baseline of the base commit from the
# checkout (else through the API). Not pinned: the Debian release is fixed by the base image's
# digest, and within it only security updates move, which are wanted.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/*

# The exact lock first (its own layer, rebuilt only when the lock changes); hashes make pip
# refuse any file that differs from the ones the tests ran with.
COPY requirements/image.lock requirements/image.lock
RUN pip install --no-cache-dir --require-hashes --only-binary=:all: -r requirements/image.lock

# The gate itself, built with the locked setuptools and without fetching anything more.
COPY pyproject.toml ./
COPY gate ./gate
RUN pip install --no-cache-dir --no-build-isolation --no-deps . \
    && rm -rf build ./*.egg-info

# No USER line, on purpose: GitHub mounts the workspace (and the files behind GITHUB_OUTPUT and
# GITHUB_STEP_SUMMARY) from the host, owned by the runner's user, and documents that container
# actions must run as the default user, root, to write there. The gate writes its report, the
# baseline and the outputs into them, so a non-root user would fail with "permission denied".
ENTRYPOINT ["gate", "action"]
