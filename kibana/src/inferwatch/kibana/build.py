"""Generate the committed saved-object bundle: ``python -m inferwatch.kibana.build [--check]``.

The bundle is built for the models of the docker-compose config (docker/inferwatch.yml: the
demo model); ``inferwatch setup`` builds the same objects for the models of the user's config.
``--check`` exits 1 when the committed file differs from what the definitions generate.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from inferwatch.core.config import Config, ModelConfig
from inferwatch.core.configschema import build
from inferwatch.kibana.bundle import bundle
from inferwatch.kibana.saved_objects import to_ndjson

ROOT = Path(__file__).resolve().parents[4]  # the repository (this tool rebuilds a committed file)
ASSET = Path(__file__).resolve().parent / "assets" / "inferwatch.ndjson"
COMPOSE_CONFIG = ROOT / "docker" / "inferwatch.yml"


def models_of(config_path: Path) -> Mapping[str, ModelConfig]:
    """The ``models`` section of a config file (the rest, with its ${ENV} secrets, is not read)."""
    raw: Any = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    return build(Config, {"models": raw.get("models") or {}}).models


def generate(config_path: Path = COMPOSE_CONFIG) -> bytes:
    return to_ndjson(bundle(models_of(config_path)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m inferwatch.kibana.build", description=__doc__)
    parser.add_argument(
        "--config", type=Path, default=COMPOSE_CONFIG, help="config whose models to build for"
    )
    parser.add_argument("--out", type=Path, default=ASSET)
    parser.add_argument("--check", action="store_true", help="compare with --out instead of writing")
    args = parser.parse_args(argv)
    data = generate(args.config)
    n = len(data.splitlines())
    if args.check:
        current = args.out.read_bytes() if args.out.exists() else b""
        if current != data:
            print(f"{args.out} is out of date: run python -m inferwatch.kibana.build", file=sys.stderr)
            return 1
        print(f"{args.out} is up to date ({n} objects)")
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(data)
    print(f"wrote {args.out} ({n} objects)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
