"""Microseconds per text of ``inferwatch.core.tokenize.tokenize`` for ASCII, accented Latin and
Japanese review texts (the three paths: the ASCII table, the regex, the regex plus CJK bigrams).

Best of 5 repeats of N calls each; compare two versions by running it on each (e.g. with
``PYTHONPATH`` pointing at an older checkout's ``agent/src``).

    .venv/bin/python bench/tokenize_speed.py [--calls 20000]
"""

from __future__ import annotations

import argparse
import functools
import timeit

from inferwatch.core.tokenize import tokenize

TEXTS = {
    "ascii": "The delivery was late again and the support agent never answered my emails, very disappointed",
    "latin": "La livraison était en retard encore une fois, le service client n'a jamais répondu, très déçu",
    "cjk": "配送が遅すぎます。サポートに連絡しても返事がありませんでした。とても残念です",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=20000)
    args = parser.parse_args()
    for name, text in TEXTS.items():
        best = min(timeit.repeat(functools.partial(tokenize, text), number=args.calls, repeat=5))
        print(f"{name:6s} {best / args.calls * 1e6:6.2f} us/text  {len(tokenize(text)):3d} tokens")


if __name__ == "__main__":
    main()
