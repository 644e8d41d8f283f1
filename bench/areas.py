"""Run another area's `bench/<name>.py` in a process of its own; print its figures as JSON lines.

    python -m bench.areas NAME [--rounds R]

Each area module sets Django up on DATABASE_URL when imported and offers
`measure(*, rounds) -> list[Figure]`; `python -m bench` runs them this way so that each uses
its own spare database and its own workers.
"""

import argparse
import dataclasses
import importlib
import json


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("name")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    module = importlib.import_module(f"bench.{args.name}")
    for figure in module.measure(rounds=args.rounds):
        print(json.dumps(dataclasses.asdict(figure)), flush=True)


if __name__ == "__main__":
    main()
