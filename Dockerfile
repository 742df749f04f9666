# The inferwatch image: agent, analytics worker, setup and the demo model (one entry point).
# Small: wheels are built in a throwaway stage; the runtime stage holds only installed packages.
# The agent's native normalizer (agent/native) is a Rust crate: the build stage borrows the
# toolchain of the official Rust image (same Debian) and a C linker, and builds its wheel too.
FROM python:3.11-slim AS build
COPY --from=rust:1-slim-bookworm /usr/local/cargo /usr/local/cargo
COPY --from=rust:1-slim-bookworm /usr/local/rustup /usr/local/rustup
ENV CARGO_HOME=/usr/local/cargo RUSTUP_HOME=/usr/local/rustup PATH=/usr/local/cargo/bin:$PATH
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY agent ./agent
COPY analytics ./analytics
COPY kibana ./kibana
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[demo]" ./agent/native

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/inferwatch --create-home inferwatch \
    && mkdir -p /logs && chown inferwatch:inferwatch /logs
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links=/wheels "inferwatch[demo]" inferwatch-native && rm -rf /wheels
USER 10001:10001
WORKDIR /var/lib/inferwatch
# /metrics, /livez, /readyz of the agent (agent.metrics.listen) and the worker (analytics.metrics.listen)
EXPOSE 9464 9465
ENTRYPOINT ["inferwatch"]
CMD ["--help"]
